"""The pre-flight VCF report: what the checker found, as stored with a file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imputehub.domain.vcf import Problem, Severity

REPORT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class VcfReport:
    """What the check found; `to_dict()` is what `StoredFile.validation` holds."""

    format: str
    bgzf_eof: bool | None
    fileformat: str | None
    samples: int
    duplicate_samples: tuple[str, ...]
    variants: int
    chromosomes: tuple[str, ...]
    chr_prefix: bool | None
    sorted: bool
    duplicate_records: int
    phased_share: float | None
    missing_share: float | None
    snps: int
    indels: int
    multiallelic: int
    other: int
    build: str | None
    build_source: str | None
    problems: tuple[Problem, ...]

    @classmethod
    def unusable(cls, fmt: str, reason: Problem) -> VcfReport:
        """The report on a file that cannot be read as a VCF: its format and why."""
        return cls(
            format=fmt,
            bgzf_eof=None,
            fileformat=None,
            samples=0,
            duplicate_samples=(),
            variants=0,
            chromosomes=(),
            chr_prefix=None,
            sorted=True,
            duplicate_records=0,
            phased_share=None,
            missing_share=None,
            snps=0,
            indels=0,
            multiallelic=0,
            other=0,
            build=None,
            build_source=None,
            problems=(reason,),
        )

    @property
    def fatal(self) -> bool:
        """Not a VCF we can read at all (or cut short): such an upload is refused."""
        return any(p.fatal for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "format": self.format,
            "bgzf_eof": self.bgzf_eof,
            "fileformat": self.fileformat,
            "samples": self.samples,
            "duplicate_samples": list(self.duplicate_samples),
            "variants": self.variants,
            "chromosomes": list(self.chromosomes),
            "chr_prefix": self.chr_prefix,
            "sorted": self.sorted,
            "duplicate_records": self.duplicate_records,
            "phased_share": self.phased_share,
            "missing_share": self.missing_share,
            "snps": self.snps,
            "indels": self.indels,
            "multiallelic": self.multiallelic,
            "other": self.other,
            "build": self.build,
            "build_source": self.build_source,
            "fatal": self.fatal,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
        }

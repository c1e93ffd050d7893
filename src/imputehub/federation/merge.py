"""The merged result of a federated job: per chromosome, the best child's record at each site.

At every site present in any eligible child, `ChromosomeMerge` writes the record of the child
with the highest estimated r² (`DoseRecord.choice_r2`: R2/DR2, 1.0 for a typed site without
one, 0.0 for an imputed site without one); ties go to the earlier child in the given order.
This is a per-site choice, not meta-imputation: dosages are never averaged.

Decisions:
- One sample order: that of the first child with samples. A child with samples must have
  exactly the same sample set (any order: its columns are reordered by name) to take part;
  a child with another set, or a child without samples while others have them, is left out
  of the merge (`MergePlan.notes` says so). When no child has samples the merge is a
  sites-only VCF of every child.
- REF/ALT: those of the first child (in the given order) carrying the site. When the chosen
  child has them swapped: ALT↔REF, DS → 2 - DS (written with 3 decimals), GT alleles 0↔1.
- Output FORMAT is `GT:DS` only (HDS, GP and the rest are dropped: they would have to be
  recomputed for swapped sites, and GT:DS is what downstream association tools read).
  Fast path: a chosen record with FORMAT exactly `GT:DS`, the output sample order and no
  swap has its sample columns written through untouched.
- INFO is our own: `SRC=<child key>;R2=<r²>;AF=<alt allele frequency>` plus `TYPED` when
  the chosen record is typed (R2 left out when the record had none; AF from the record, for
  the output's ALT, else mean dosage / 2, else left out). ID, QUAL and FILTER come from the
  chosen record (the children's `##FILTER` lines are copied).
- Chromosome names: the 'chr' style of the first eligible child; `##contig` lines from all
  children's headers (the first seen per chromosome), renamed to that style.
- The file is `chr<N>.merged.dose.vcf.gz`, compressed by a `bgzip -c` child process and
  indexed with `tabix -p vcf`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from imputehub.domain.vcf import bare_chromosome
from imputehub.federation.comparison import IntArray
from imputehub.federation.dose_records import DoseHeader, DoseRecord, FloatArray, gt_ds_only
from imputehub.federation.site_walk import Site

MERGE_LINE = "##imputehub_merge=best estimated r2 per site; not meta-imputation\n"
_FLIP_GT = bytes.maketrans(b"01", b"10")
_CONTIG_ID = re.compile(r"^##contig=<ID=([^,>]+)")
_FILTER_ID = re.compile(r"^##FILTER=<ID=([^,>]+)")


class MergeToolError(RuntimeError):
    """bgzip or tabix failed on the merged output."""


@dataclass(frozen=True, kw_only=True)
class MergeChild:
    key: str
    label: str
    header: DoseHeader  # of any one of its files (samples and header lines)
    headers: tuple[DoseHeader, ...]  # all its files' headers (for contig and filter lines)
    chr_prefix: bool  # whether its chromosome names start with 'chr'


@dataclass(frozen=True, kw_only=True)
class MergePlan:
    """Which children take part in the merge, in which sample order."""

    children: tuple[MergeChild, ...]
    eligible: tuple[bool, ...]
    samples: tuple[str, ...]
    # Per child: the columns to take, in output order (None: same order already).
    columns: tuple[IntArray | None, ...]
    chr_prefix: bool
    contigs: tuple[tuple[str, str], ...]  # (name without 'chr', line after the ID)
    filters: tuple[str, ...]
    notes: tuple[str, ...]


def plan_merge(children: Sequence[MergeChild]) -> MergePlan:
    """Decide eligibility and sample order (see the module docstring)."""
    order: tuple[str, ...] = next((c.header.samples for c in children if c.header.samples), ())
    eligible: list[bool] = []
    columns: list[IntArray | None] = []
    notes: list[str] = []
    for child in children:
        samples = child.header.samples
        if not order:
            eligible.append(True)
            columns.append(None)
        elif not samples:
            eligible.append(False)
            columns.append(None)
            notes.append(
                f"{child.label} ({child.key}) has no samples: "
                "left out of the merged result, which has dosages"
            )
        elif set(samples) != set(order) or len(samples) != len(order):
            eligible.append(False)
            columns.append(None)
            notes.append(
                f"{child.label} ({child.key}) has other samples than "
                f"{next(c for c in children if c.header.samples).label}: "
                "left out of the merged result"
            )
        else:
            eligible.append(True)
            if samples == order:
                columns.append(None)
            else:
                where = {name: index for index, name in enumerate(samples)}
                columns.append(np.array([where[name] for name in order], np.intp))
    first = next(c for c, ok in zip(children, eligible, strict=True) if ok)
    contigs: dict[str, str] = {}
    filters: dict[str, str] = {}
    for child in children:
        for header in child.headers:
            for line in header.contigs:
                match = _CONTIG_ID.match(line)
                if match:
                    name = bare_chromosome(match.group(1))
                    contigs.setdefault(name, line[match.end() :])
            for line in header.filters:
                match = _FILTER_ID.match(line)
                if match and match.group(1) != "PASS":
                    filters.setdefault(match.group(1), line)
    return MergePlan(
        children=tuple(children),
        eligible=tuple(eligible),
        samples=order,
        columns=tuple(columns),
        chr_prefix=first.chr_prefix,
        contigs=tuple(contigs.items()),
        filters=tuple(filters.values()),
        notes=tuple(notes),
    )


def _clean(text: str) -> str:
    """A label on one header line: no control characters."""
    return "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text)


def output_name(plan: MergePlan, chrom: str) -> str:
    """The chromosome as the merged files spell it."""
    return f"chr{chrom}" if plan.chr_prefix else chrom


def merged_file_name(chrom: str) -> str:
    return f"chr{chrom}.merged.dose.vcf.gz"


def header_text(plan: MergePlan, chrom: str) -> str:
    """The merged file's header for chromosome `chrom` (without 'chr')."""
    lines = [
        "##fileformat=VCFv4.2\n",
        "##source=imputehub federated job merge\n",
        MERGE_LINE,
    ]
    lines += [f"##imputehub_source={c.key}={_clean(c.label)}\n" for c in plan.children]
    lines += [
        '##FILTER=<ID=PASS,Description="All filters passed">\n',
        *plan.filters,
        '##INFO=<ID=SRC,Number=1,Type=String,Description="Key of the child job whose record '
        'was chosen (highest estimated r2)">\n',
        '##INFO=<ID=R2,Number=1,Type=Float,Description="Estimated imputation r2 of the '
        'chosen record (its R2 or DR2)">\n',
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Alternate allele frequency of the '
        'chosen record">\n',
        '##INFO=<ID=TYPED,Number=0,Type=Flag,Description="The chosen record is a typed '
        '(genotyped) site">\n',
    ]
    if plan.samples:
        lines += [
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n',
            '##FORMAT=<ID=DS,Number=A,Type=Float,Description="Estimated alternate allele '
            'dosage">\n',
        ]
    lines += [f"##contig=<ID={output_name(plan, name)}{rest}" for name, rest in plan.contigs]
    columns = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
    if plan.samples:
        columns += ["FORMAT", *plan.samples]
    lines.append("\t".join(columns) + "\n")
    return "".join(lines)


def _number(value: float) -> bytes:
    return format(value, ".6g").encode()


class ChromosomeMerge:
    """Writes one chromosome's merged VCF; `add_site` per site, then `finish()`."""

    def __init__(
        self, plan: MergePlan, chrom: str, out_dir: Path, *, bgzip: str, tabix: str
    ) -> None:
        self.plan = plan
        self.path = out_dir / merged_file_name(chrom)
        self._tabix = tabix
        self._chrom = output_name(plan, chrom).encode()
        self._keys = [child.key.encode() for child in plan.children]
        self._width = len(plan.samples)
        self.sites = 0
        self._file = self.path.open("wb")
        self._zipper = subprocess.Popen(  # noqa: S603 - a configured tool path, no shell
            [bgzip, "-c"], stdin=subprocess.PIPE, stdout=self._file, stderr=subprocess.PIPE
        )
        assert self._zipper.stdin is not None
        self._out: IO[bytes] = self._zipper.stdin
        self._out.write(header_text(plan, chrom).encode())

    def add_site(self, site: Site) -> None:
        best = -1
        best_r2 = -1.0
        for index, record in enumerate(site.records):
            if record is not None and self.plan.eligible[index]:
                value = record.choice_r2()
                if value > best_r2:
                    best, best_r2 = index, value
        if best < 0:
            return  # only children left out of the merge have it
        record = site.records[best]
        assert record is not None
        swapped = site.swapped[best]
        info = b"SRC=" + self._keys[best]
        if record.r2 is not None:
            info += b";R2=" + _number(record.r2)
        af = record.af
        if af is None and self._width and record.sample_count:
            values = record.dosages()
            values = values[~np.isnan(values)]
            af = float(values.mean()) / 2.0 if len(values) else None
        if af is not None:
            info += b";AF=" + _number(1.0 - af if swapped else af)
        if record.typed:
            info += b";TYPED"
        fields = [
            self._chrom,
            b"%d" % site.pos,
            record.id,
            site.ref.encode(),
            site.alt.encode(),
            record.qual,
            record.filter,
            info,
        ]
        if self._width:
            fields += [b"GT:DS", self._samples(record, swapped, self.plan.columns[best])]
        self._out.write(b"\t".join(fields) + b"\n")
        self.sites += 1

    def _samples(self, record: DoseRecord, swapped: bool, columns: IntArray | None) -> bytes:
        fmt = record.format
        if not swapped:
            if fmt == b"GT:DS":
                text = record.sample_text
            elif fmt.startswith(b"GT:DS:"):
                cut = gt_ds_only(record.sample_text, fmt, record.sample_count)
                if cut is None:
                    return self._rebuilt(record, swapped, columns)
                text = cut
            else:
                return self._rebuilt(record, swapped, columns)
            if columns is None:
                return text
            parts = text.split(b"\t")
            return b"\t".join([parts[i] for i in columns])
        return self._rebuilt(record, swapped, columns)

    def _rebuilt(self, record: DoseRecord, swapped: bool, columns: IntArray | None) -> bytes:
        """GT:DS per sample from any FORMAT, flipped when swapped, in output order."""
        names = record.format.split(b":")
        gt_at = names.index(b"GT") if b"GT" in names else -1
        dosages: FloatArray = record.dosages()
        if swapped:
            dosages = 2.0 - dosages
        parts = record.sample_text.split(b"\t")
        order = range(len(parts)) if columns is None else columns
        out = []
        for index in order:
            values = parts[index].split(b":")
            gt = values[gt_at] if 0 <= gt_at < len(values) else b"."
            if swapped:
                gt = gt.translate(_FLIP_GT)
            ds = dosages[index]
            out.append(gt + (b":." if np.isnan(ds) else b":%.3f" % ds))
        return b"\t".join(out)

    def finish(self) -> Path:
        """Close the bgzip stream and index the file; the merged file's path."""
        self._out.close()
        code = self._zipper.wait()
        self._file.close()
        assert self._zipper.stderr is not None
        detail = self._zipper.stderr.read().decode("utf-8", "replace").strip()
        self._zipper.stderr.close()
        if code != 0:
            raise MergeToolError(f"bgzip failed on {self.path.name}: {detail or code}")
        done = subprocess.run(  # noqa: S603 - a configured tool path, no shell
            [self._tabix, "-f", "-p", "vcf", str(self.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise MergeToolError(f"tabix failed on {self.path.name}: {done.stderr.strip()}")
        return self.path

    def abort(self) -> None:
        """Stop writing (after an error elsewhere): no process left behind."""
        if not self._out.closed:
            self._out.close()
        self._zipper.wait()
        self._file.close()
        if self._zipper.stderr is not None:
            self._zipper.stderr.close()

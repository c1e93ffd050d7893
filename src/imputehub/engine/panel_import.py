"""Importing a reference panel into the local engine's store: checked, counted, copied.

What is checked, before anything is written: the file is bgzipped (BGZF, with its end
block), it has a tabix (`.tbi`) or CSI (`.csi`) index next to it, samples, records, and
phased, non-missing genotypes in its first records (Beagle refuses anything else as a
reference); the contig lengths in its header, when they name a build, are those of the
build given. A missing index is refused, not built: we never write next to the operator's
file (it may sit on read-only or shared storage), and the tool that made the file is the
right one to index it (`tabix -p vcf FILE`).

Counts come from the index (`bcftools index -n`, cheap; a streamed count when the index
holds none) and contigs from `tabix -l`. The VCF and its index are then copied (streamed)
into the store under temporary names and renamed into place; `panel.json` comes last, so
an import that fails half-way leaves no panel offered and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from imputehub.domain.errors import PermanentServiceError
from imputehub.domain.jobs import Build
from imputehub.domain.vcf import build_from_lengths
from imputehub.engine.panel_store import (
    INDEX_SUFFIXES,
    PANEL_META,
    PANEL_VCF,
    PanelMeta,
    PanelNotFound,
    PanelStore,
)

# How many records the phasing check reads (streamed; the rest of the file is not read).
PHASE_CHECK_RECORDS = 200
READ_SIZE = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b\x08"
_FEXTRA = 0x04
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_CONTIG_LINE = re.compile(rb"^##contig=<(.*)>\s*$")
_PACKAGES = {"bcftools": "bcftools", "tabix": "tabix"}


class PanelImportError(PermanentServiceError):
    """The file cannot become a reference panel of the local engine; the message says why."""

    code = "panel_import_refused"


class PanelExists(PanelImportError):
    """The store already offers a panel with this id (import again with replace)."""

    code = "panel_exists"


@dataclass(frozen=True, kw_only=True)
class PanelTools:
    """The programs the import runs: bare names are looked up on PATH."""

    bcftools: str = "bcftools"
    tabix: str = "tabix"


@dataclass(frozen=True, kw_only=True)
class PanelFacts:
    """What the checks learnt about a panel file."""

    index: Path
    sample_count: int
    variant_count: int
    contigs: tuple[str, ...]


def import_panel(
    store: PanelStore,
    vcf_path: Path,
    *,
    panel_id: str,
    display_name: str,
    build: str,
    populations: Sequence[str] = (),
    description: str = "",
    tools: PanelTools | None = None,
    replace: bool = False,
) -> PanelMeta:
    """Check, count and copy `vcf_path` into `store` as `panel_id`; its description.

    Raises PanelExists when the store already offers `panel_id` (unless `replace`), and
    PanelImportError when the file cannot be a reference panel. Populations, display name
    and description are stored as given: the caller has checked them.
    """
    tools = tools or PanelTools()
    try:
        directory = store.directory(panel_id)
    except PanelNotFound as exc:  # an id unfit for a directory name
        raise PanelImportError(exc.message) from None
    if store.is_offered(panel_id) and not replace:
        raise PanelExists(
            f"the local engine already has a reference panel '{panel_id}'; "
            "choose another id, or replace it (imputehub panels import --replace)"
        )
    if build not in {b.value for b in Build}:
        raise PanelImportError(f"build must be one of {', '.join(b.value for b in Build)}")
    facts = inspect_panel(vcf_path, build=build, tools=tools)
    meta = PanelMeta(
        panel_id=panel_id,
        display_name=display_name,
        build=build,
        populations=tuple(populations),
        sample_count=facts.sample_count,
        variant_count=facts.variant_count,
        contigs=facts.contigs,
        description=description,
        extra={"source": str(vcf_path.resolve()), "index": facts.index.suffix.lstrip(".")},
    )
    _install(store, directory, vcf_path, facts.index, meta)
    return meta


def inspect_panel(vcf_path: Path, *, build: str, tools: PanelTools) -> PanelFacts:
    """Every check on the file (nothing is written); what it holds."""
    if not vcf_path.is_file():
        raise PanelImportError(f"no file {vcf_path}")
    check_bgzf(vcf_path)
    index = find_index(vcf_path)
    contigs = _contigs(vcf_path, tools)
    if not contigs:
        raise PanelImportError(f"{vcf_path.name} has no variant records")
    samples = _sample_count(vcf_path, tools)
    if samples == 0:
        raise PanelImportError(
            f"{vcf_path.name} has no samples: a reference panel needs phased genotypes"
        )
    _check_build(vcf_path, contigs, build, tools)
    _check_phased(vcf_path, tools)
    return PanelFacts(
        index=index,
        sample_count=samples,
        variant_count=_variant_count(vcf_path, tools),
        contigs=contigs,
    )


def check_bgzf(path: Path) -> None:
    """BGZF: a gzip member with the `BC` extra subfield first, the empty end block last."""
    with path.open("rb") as file:
        head = file.read(12)
        extra = file.read(int.from_bytes(head[10:12], "little")) if len(head) == 12 else b""
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - len(_BGZF_EOF)))
        tail = file.read()
    name = path.name
    if not head.startswith(_GZIP_MAGIC):
        raise PanelImportError(
            f"{name} is not compressed: a reference panel must be bgzipped "
            f"(bgzip {name}, then tabix -p vcf {name}.gz)"
        )
    if len(head) < 12 or not head[3] & _FEXTRA or not _has_bc_subfield(extra):
        raise PanelImportError(
            f"{name} is compressed with plain gzip, not bgzip (BGZF); recompress it "
            f"(zcat {name} | bgzip > NEW.vcf.gz) and index it (tabix -p vcf NEW.vcf.gz)"
        )
    if tail != _BGZF_EOF:
        raise PanelImportError(
            f"{name} ends without the BGZF end-of-file block: the file is cut short "
            "(an interrupted copy or download?)"
        )


def _has_bc_subfield(extra: bytes) -> bool:
    offset = 0
    while offset + 4 <= len(extra):
        length = int.from_bytes(extra[offset + 2 : offset + 4], "little")
        if extra[offset : offset + 2] == b"BC":
            return True
        offset += 4 + length
    return False


def find_index(vcf_path: Path) -> Path:
    """The `.tbi` or `.csi` next to the file (`.tbi` first)."""
    for suffix in INDEX_SUFFIXES:
        candidate = vcf_path.with_name(vcf_path.name + suffix)
        if candidate.is_file():
            return candidate
    name = vcf_path.name
    raise PanelImportError(
        f"{name} has no index next to it (looked for {name}.tbi and {name}.csi); "
        f"index it first: tabix -p vcf {vcf_path}"
    )


# ---- the tools ----------------------------------------------------------------------------


@contextlib.contextmanager
def _started(args: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], IO[bytes]]]:
    """A tool with its stdout piped; killed if the caller stops reading early."""
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors)  # noqa: S603
        except FileNotFoundError:
            package = _PACKAGES.get(Path(args[0]).name, args[0])
            raise PanelImportError(
                f"{args[0]} is not installed: install the Debian package {package}"
            ) from None
        try:
            yield process, errors
        finally:
            if process.poll() is None:
                process.kill()
            assert process.stdout is not None
            process.stdout.close()
            process.wait()


def _failure(args: list[str], code: int, errors: IO[bytes]) -> PanelImportError:
    errors.seek(0, os.SEEK_END)
    errors.seek(max(0, errors.tell() - 2000))
    text = errors.read().decode(errors="replace").strip()
    detail = text.splitlines()[-1] if text else f"exit code {code}"
    return PanelImportError(f"{Path(args[0]).name} {args[1]} failed: {detail}")


def _lines(args: list[str]) -> Generator[bytes, None, None]:
    """The tool's output lines, streamed; PanelImportError if it fails.

    Stopping early (closing the generator) kills the tool and is not a failure."""
    with _started(args) as (process, errors):
        assert process.stdout is not None
        yield from process.stdout
        code = process.wait()
        if code != 0:
            raise _failure(args, code, errors)


def _output(args: list[str]) -> str:
    """A tool's whole output, for tools whose answer is short (a count, contig names)."""
    return b"".join(_lines(args)).decode(errors="replace")


def _count_lines(args: list[str]) -> int:
    """How many lines a tool prints, read in bounded chunks."""
    with _started(args) as (process, errors):
        assert process.stdout is not None
        count = 0
        while chunk := process.stdout.read(READ_SIZE):
            count += chunk.count(b"\n")
        code = process.wait()
        if code != 0:
            raise _failure(args, code, errors)
    return count


def _contigs(vcf: Path, tools: PanelTools) -> tuple[str, ...]:
    # From the index: only contigs with records (not every ##contig line of the header).
    return tuple(line for line in _output([tools.tabix, "-l", str(vcf)]).splitlines() if line)


def _sample_count(vcf: Path, tools: PanelTools) -> int:
    return _count_lines([tools.bcftools, "query", "-l", str(vcf)])


def _variant_count(vcf: Path, tools: PanelTools) -> int:
    try:
        text = _output([tools.bcftools, "index", "-n", str(vcf)]).strip()
        return int(text)
    except (PanelImportError, ValueError):
        # An index made without record counts: count the records, streamed.
        return _count_lines([tools.bcftools, "view", "-H", "--no-version", str(vcf)])


def _check_build(vcf: Path, contigs: Sequence[str], build: str, tools: PanelTools) -> None:
    """Refuse a panel whose ##contig lengths belong to the other build."""
    with_records = set(contigs)
    lengths: dict[str, int] = {}
    header = _lines([tools.bcftools, "view", "-h", "--no-version", str(vcf)])
    with contextlib.closing(header):  # closing stops the tool
        for line in header:
            if line.startswith(b"#CHROM"):
                break
            match = _CONTIG_LINE.match(line)
            if match:
                name, length = _contig_fields(match.group(1))
                if name in with_records and length is not None:
                    lengths[name] = length
    found = build_from_lengths(lengths)
    if found and build not in found:
        raise PanelImportError(
            f"{vcf.name} is a {'/'.join(sorted(found))} panel (its ##contig lengths say so), "
            f"not {build}; give the build it was made for"
        )


def _contig_fields(text: bytes) -> tuple[str, int | None]:
    """ID and length of a ##contig line's `<...>` part."""
    name, length = "", None
    for item in text.split(b","):
        key, _, value = item.partition(b"=")
        if key == b"ID":
            name = value.decode(errors="replace")
        elif key == b"length" and value.isdigit():
            length = int(value)
    return name, length


def _check_phased(vcf: Path, tools: PanelTools) -> None:
    """The first records' genotypes are all phased and complete (haploid calls count too)."""
    records = _lines([tools.bcftools, "view", "-H", "--no-version", str(vcf)])
    with contextlib.closing(records):  # closing stops the tool: the rest is not read
        for number, line in enumerate(records, start=1):
            _check_record(vcf.name, number, line.rstrip(b"\r\n").split(b"\t"))
            if number >= PHASE_CHECK_RECORDS:
                break


def _check_record(name: str, number: int, columns: list[bytes]) -> None:
    position = b":".join(columns[:2]).decode(errors="replace")
    where = f"record {number} ({position})"
    if len(columns) < 10 or columns[8].split(b":")[0] != b"GT":
        raise PanelImportError(
            f"{name}: {where} has no genotypes (GT first in FORMAT); a reference panel needs "
            "phased genotypes"
        )
    for sample, value in enumerate(columns[9:], start=1):
        genotype = value.split(b":", 1)[0]
        if b"/" in genotype:
            raise PanelImportError(
                f"{name} is not phased: {where} has the unphased genotype "
                f"'{genotype.decode(errors='replace')}' (sample {sample}); a reference panel "
                "must be phased (phase it first, e.g. with Beagle or SHAPEIT)"
            )
        if b"." in genotype.split(b"|"):
            raise PanelImportError(
                f"{name}: {where} has a missing genotype (sample {sample}); a reference "
                "panel must have complete, phased genotypes"
            )


# ---- into the store -----------------------------------------------------------------------


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)  # streamed by the OS (copy_file_range / sendfile)
    with target.open("rb") as copied:
        os.fsync(copied.fileno())  # on disk before the rename makes it the panel


def _install(store: PanelStore, directory: Path, vcf: Path, index: Path, meta: PanelMeta) -> None:
    made_directory = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    index_suffix = index.suffix  # ".tbi" or ".csi"
    tmp_vcf = directory / f".{PANEL_VCF}.import-{token}"
    tmp_index = directory / f".{PANEL_VCF}{index_suffix}.import-{token}"
    try:
        _copy(vcf, tmp_vcf)
        _copy(index, tmp_index)
        # From here until save_meta the panel is not offered (a replaced one included).
        (directory / PANEL_META).unlink(missing_ok=True)
        for suffix in INDEX_SUFFIXES:
            if suffix != index_suffix:
                # htslib would prefer a stale index of the other kind: remove it.
                (directory / f"{PANEL_VCF}{suffix}").unlink(missing_ok=True)
        os.replace(tmp_vcf, directory / PANEL_VCF)
        os.replace(tmp_index, directory / f"{PANEL_VCF}{index_suffix}")
        store.save_meta(meta)
    except BaseException as exc:
        tmp_vcf.unlink(missing_ok=True)
        tmp_index.unlink(missing_ok=True)
        if made_directory:
            shutil.rmtree(directory, ignore_errors=True)
        if isinstance(exc, OSError):
            raise PanelImportError(
                f"could not copy the panel into {directory}: {exc.strerror or exc}"
            ) from exc
        raise

"""Streaming reader of imputed dose VCFs (Beagle's and Minimac4's / the Michigan servers').

One `DoseReader` per bgzipped file yields one `DoseRecord` per line: the chromosome with a
leading 'chr' stripped, position, alleles, the estimated r² (INFO `R2` or `DR2`), the allele
frequency (`AF`, `MAF`), whether the site is typed, and the sample columns kept as raw bytes.
Per-sample values are parsed only when asked (`DoseRecord.dosages()`), since most uses
(counts, r² per bin, the merge's pass-through) never need them.

Decisions:
- Typed or imputed: `TYPED`/`TYPED_ONLY` flags (Minimac4) mean typed, `IMPUTED` (Minimac4) or
  `IMP` (Beagle) mean imputed; a record with none of these is typed when it carries Beagle's
  `DR2` (Beagle flags only imputed records), else imputed.
- Dosages are parsed from the bytes with numpy (the positions of ':' and tab give each
  sample's DS field, its digits are read column by column), which is several times faster
  than splitting in Python; anything that does not look like plain `d` or `d.ddd`
  (missing '.', signs, exponents, samples with dropped trailing fields) goes through a
  plain per-sample parse instead, missing values becoming NaN.
- Decompression runs in a `bgzip -dc` child process when a bgzip path is given (the
  analysis gives one: it uses a second core), else in-process with `gzip`.
- A position going backwards within a chromosome, or a chromosome coming back after
  another, raises `UnsortedDoseFile` naming the file and position.
"""

from __future__ import annotations

import contextlib
import gzip
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, cast

import numpy as np
import numpy.typing as npt

from imputehub.domain.vcf import bare_chromosome

FloatArray = npt.NDArray[np.float64]

_BUFFER = 1 << 20
_COLON, _TAB = 58, 9
_DOT_DIGIT = (46 - 48) % 256  # '.' after subtracting '0' from the bytes
# Place value of each character of a 'd.ddd…' field: the integer digit, the point, decimals.
_SCALE = np.array([1.0, 0.0] + [10.0**-k for k in range(1, 20)])
_PAD = b"\t" * (len(_SCALE) + 1)


class DoseFileError(ValueError):
    """A dose VCF that cannot be read; the message names the file (and where)."""


class UnsortedDoseFile(DoseFileError):
    """Records out of position order within a chromosome."""


@dataclass(frozen=True, kw_only=True)
class DoseHeader:
    """What the header of one dose VCF says."""

    path: Path
    samples: tuple[str, ...]
    contigs: tuple[str, ...]  # the '##contig=' lines as written (with newline)
    filters: tuple[str, ...]  # the '##FILTER=' lines as written (with newline)


@dataclass(frozen=True)
class _Format:
    """Where GT and DS are in one FORMAT string."""

    fields: int
    gt: int  # -1 when absent
    ds: int  # -1 when absent
    gt_ds: bool  # exactly GT:DS


_FORMATS: dict[bytes, _Format] = {}


def _format(text: bytes) -> _Format:
    known = _FORMATS.get(text)
    if known is None:
        names = text.split(b":")
        known = _Format(
            fields=len(names),
            gt=names.index(b"GT") if b"GT" in names else -1,
            ds=names.index(b"DS") if b"DS" in names else -1,
            gt_ds=names == [b"GT", b"DS"],
        )
        _FORMATS[text] = known
    return known


class DoseRecord:
    """One biallelic record of a dose VCF; sample columns parsed lazily."""

    __slots__ = (
        "_dosages",
        "af",
        "alt",
        "chrom",
        "filter",
        "format",
        "id",
        "maf",
        "pos",
        "qual",
        "r2",
        "raw_chrom",
        "ref",
        "sample_count",
        "sample_text",
        "typed",
    )

    def __init__(
        self,
        *,
        raw_chrom: str,
        pos: int,
        ref: str,
        alt: str,
        id_: bytes,
        qual: bytes,
        filter_: bytes,
        r2: float | None,
        af: float | None,
        maf: float | None,
        typed: bool,
        format_: bytes,
        sample_text: bytes,
        sample_count: int,
    ) -> None:
        self.raw_chrom = raw_chrom
        self.chrom = bare_chromosome(raw_chrom)
        self.pos = pos
        self.ref = ref
        self.alt = alt
        self.id = id_
        self.qual = qual
        self.filter = filter_
        self.r2 = r2
        self.af = af
        self.maf = maf
        self.typed = typed
        self.format = format_  # b"" for a sites-only file
        self.sample_text = sample_text  # the columns after FORMAT, tab-separated, no newline
        self.sample_count = sample_count
        self._dosages: FloatArray | None = None

    def dosages(self) -> FloatArray:
        """DS of every sample in file order (NaN where missing); parsed once, then cached."""
        if self._dosages is None:
            self._dosages = parse_dosages(self.sample_text, self.format, self.sample_count)
        return self._dosages

    def choice_r2(self) -> float:
        """The r² that decides between children: the estimate, else 1.0 for a typed site
        (measured, not imputed), else 0.0 (an imputed site of unknown quality loses)."""
        if self.r2 is not None:
            return self.r2
        return 1.0 if self.typed else 0.0

    def minor_allele_frequency(self) -> float | None:
        """INFO MAF, else min(AF, 1 - AF), else the mean dosage / 2 (None without any)."""
        if self.maf is not None:
            return self.maf
        if self.af is not None:
            return min(self.af, 1.0 - self.af)
        if self.sample_count:
            values = self.dosages()
            values = values[~np.isnan(values)]
            if len(values):
                af = float(values.mean()) / 2.0
                return min(af, 1.0 - af)
        return None


def parse_dosages(text: bytes, format_: bytes, count: int) -> FloatArray:
    """The DS values of `count` samples from their raw tab-separated columns."""
    if count == 0:
        return np.empty(0, np.float64)
    fmt = _format(format_)
    if fmt.ds < 0:
        return np.full(count, np.nan)
    fast = _fast_dosages(text, fmt, count)
    return fast if fast is not None else _plain_dosages(text, fmt.ds, count)


def _fast_dosages(text: bytes, fmt: _Format, count: int) -> FloatArray | None:
    """Vectorised parse of plain 'd' / 'd.ddd' DS fields; None when anything else is there."""
    if fmt.ds == 0:
        return None  # DS first: rare, the plain parse handles it
    # Padding, so that reading `width` bytes from any field start stays inside the buffer.
    data = np.frombuffer(text + _PAD, np.uint8)
    colons = np.flatnonzero(data == _COLON)
    per_sample = fmt.fields - 1
    if len(colons) != count * per_sample:
        return None  # some sample has fewer fields (or a ':' inside a value)
    starts = colons[fmt.ds - 1 :: per_sample] + 1
    if fmt.ds < per_sample:
        ends = colons[fmt.ds :: per_sample]
    else:
        ends = np.flatnonzero(data[: len(text) + 1] == _TAB)
        if len(ends) != count:
            return None
    lengths = ends - starts
    width = int(lengths.max())
    if width > len(_SCALE) or int(lengths.min()) < 1:
        return None
    columns = np.arange(width)
    digits = data[starts[:, None] + columns] - np.uint8(48)  # wraps below '0': >= 10 too
    outside = columns >= lengths[:, None]
    digits[outside] = 0
    if width > 1:
        if not np.all((digits[:, 1] == _DOT_DIGIT) | outside[:, 1]):
            return None
        digits[:, 1] = 0
    if not np.all(digits < 10):
        return None
    values: FloatArray = digits @ _SCALE[:width]
    return values


def gt_ds_only(text: bytes, format_: bytes, count: int) -> bytes | None:
    """The sample columns cut to their first two fields, for a FORMAT starting 'GT:DS:'
    (None when the columns do not all have every field: the caller rebuilds them)."""
    fmt = _format(format_)
    data = np.frombuffer(text, np.uint8)
    colons = np.flatnonzero(data == _COLON)
    per_sample = fmt.fields - 1
    if fmt.gt != 0 or fmt.ds != 1 or len(colons) != count * per_sample:
        return None
    ends = np.flatnonzero(data == _TAB)
    if len(ends) != count - 1:
        return None
    # +1 where a cut starts (each sample's second ':'), -1 where it ends (its tab).
    edges = np.zeros(len(data) + 1, np.int8)
    edges[colons[1::per_sample]] = 1
    edges[ends] = -1
    keep = np.cumsum(edges[:-1], dtype=np.int8) == 0
    cut: bytes = data[keep].tobytes()
    return cut


def _plain_dosages(text: bytes, ds: int, count: int) -> FloatArray:
    out = np.full(count, np.nan)
    for index, column in enumerate(text.split(b"\t")[:count]):
        parts = column.split(b":")
        if len(parts) > ds and parts[ds] not in (b".", b""):
            with contextlib.suppress(ValueError):  # unreadable counts as missing
                out[index] = float(parts[ds])
    return out


def _info(info: bytes) -> tuple[float | None, float | None, float | None, bool]:
    """(r², AF, MAF, typed) from an INFO column."""
    r2 = af = maf = None
    flags: set[bytes] = set()
    has_dr2 = False
    for item in info.split(b";"):
        key, sep, value = item.partition(b"=")
        if not sep:
            flags.add(key)
            continue
        if key == b"R2" or key == b"DR2":
            has_dr2 = has_dr2 or key == b"DR2"
            r2 = _number(value)
        elif key == b"AF":
            af = _number(value)
        elif key == b"MAF":
            maf = _number(value)
    if b"TYPED" in flags or b"TYPED_ONLY" in flags:
        typed = True
    elif b"IMPUTED" in flags or b"IMP" in flags:
        typed = False
    else:
        typed = has_dr2
    return r2, af, maf, typed


def _number(value: bytes) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None  # '.' or garbage: unknown


def _open(path: Path, bgzip: str | None) -> tuple[IO[bytes], subprocess.Popen[bytes] | None]:
    if bgzip is None:
        return cast(IO[bytes], gzip.open(path, "rb")), None
    process = subprocess.Popen(  # noqa: S603 - a configured tool path, no shell
        [bgzip, "-dc", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=_BUFFER,
    )
    assert process.stdout is not None
    return process.stdout, process


class DoseReader:
    """Iterate the records of one bgzipped dose VCF; use as a context manager."""

    def __init__(self, path: Path, *, bgzip: str | None = None) -> None:
        self.path = path
        self._stream, self._process = _open(path, bgzip)
        self._first: bytes | None = None
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise

    def _error(self, message: str) -> DoseFileError:
        return DoseFileError(f"{self.path.name}: {message}")

    def _read_header(self) -> DoseHeader:
        contigs: list[str] = []
        filters: list[str] = []
        try:
            for line in self._stream:
                if line.startswith(b"##"):
                    if line.startswith(b"##contig="):
                        contigs.append(line.decode("utf-8", "replace").rstrip("\r\n") + "\n")
                    elif line.startswith(b"##FILTER="):
                        filters.append(line.decode("utf-8", "replace").rstrip("\r\n") + "\n")
                    continue
                if line.startswith(b"#CHROM"):
                    columns = line.rstrip(b"\r\n").decode("utf-8", "replace").split("\t")
                    if len(columns) < 8:
                        break
                    return DoseHeader(
                        path=self.path,
                        samples=tuple(columns[9:]),
                        contigs=tuple(contigs),
                        filters=tuple(filters),
                    )
                break
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise self._error(f"not a bgzipped VCF ({error})") from error
        self._check_process()
        raise self._error("not a VCF (no '#CHROM' header line)")

    def _check_process(self) -> None:
        if self._process is None:
            return
        code = self._process.wait()
        if code != 0:
            assert self._process.stderr is not None
            detail = self._process.stderr.read().decode("utf-8", "replace").strip()
            raise self._error(f"not a bgzipped file ({detail or f'bgzip exit code {code}'})")

    def __iter__(self) -> Iterator[DoseRecord]:
        count = len(self.header.samples)
        chrom = ""
        last = -1
        seen: set[str] = set()
        try:
            for line in self._stream:
                fields = line.rstrip(b"\r\n").split(b"\t", 9)
                if len(fields) < 8:
                    if not line.strip():
                        continue
                    raise self._error(f"a record with {len(fields)} columns (8 or more expected)")
                raw_chrom = fields[0].decode()
                try:
                    pos = int(fields[1])
                except ValueError:
                    raise self._error(f"position {fields[1]!r} is not a number") from None
                if raw_chrom != chrom:
                    if raw_chrom in seen:
                        raise UnsortedDoseFile(
                            f"{self.path.name}: not sorted: chromosome {raw_chrom} comes back "
                            f"at position {pos} after another chromosome"
                        )
                    seen.add(raw_chrom)
                    chrom, last = raw_chrom, -1
                elif pos < last:
                    raise UnsortedDoseFile(
                        f"{self.path.name}: not sorted: {raw_chrom}:{pos} comes after "
                        f"{raw_chrom}:{last}"
                    )
                last = pos
                r2, af, maf, typed = _info(fields[7])
                with_samples = len(fields) == 10
                yield DoseRecord(
                    raw_chrom=raw_chrom,
                    pos=pos,
                    ref=fields[3].decode(),
                    alt=fields[4].decode(),
                    id_=fields[2],
                    qual=fields[5],
                    filter_=fields[6],
                    r2=r2,
                    af=af,
                    maf=maf,
                    typed=typed,
                    format_=fields[8] if len(fields) > 8 else b"",
                    sample_text=fields[9] if with_samples else b"",
                    sample_count=count if with_samples else 0,
                )
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise self._error(f"unreadable ({error})") from error
        self._check_process()

    def close(self) -> None:
        self._stream.close()
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            if self._process.stderr is not None:
                self._process.stderr.close()

    def __enter__(self) -> DoseReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

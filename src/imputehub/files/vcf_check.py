"""The pre-flight VCF check: one streamed pass over the raw (compressed) bytes.

`VcfChecker` is fed the bytes in order, as they arrive (an upload, a file on disk), and
`finish()` gives a `VcfReport`. It keeps counters, the previous record's key, the set of
chromosomes and the header's contig lengths: memory stays bounded whatever the file size.

Per record the Python work is one split of the fixed columns and a few comparisons (order,
duplicates); alleles and genotype columns are counted a block at a time in C
(`files/vcf_columns.py`), so the cost per sample never runs through Python code.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imputehub.domain import vcf
from imputehub.domain.vcf import Problem, problem
from imputehub.files.bgzf import BlockReader, Compression, CompressionError
from imputehub.files.vcf_columns import MAX_FORMATS, AlleleCounts, GenotypeCounts
from imputehub.files.vcf_report import VcfReport

__all__ = ["VcfChecker", "VcfReport", "check_bytes", "check_path", "check_stream"]

MAX_LINE = 16 * 1024 * 1024
MAX_CHROMOSOMES = 10_000
MAX_CONTIGS = 100_000
MAX_HINTS = 20
SHOWN_NAMES = 20
READ_SIZE = 1024 * 1024

FIXED_COLUMNS = [b"#CHROM", b"POS", b"ID", b"REF", b"ALT", b"QUAL", b"FILTER", b"INFO"]
_META_ITEM = re.compile(rb'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^,>]*)')


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _describe_start(line: bytes) -> str:
    """How the first line looks, for a 'not a VCF' message: never the raw bytes of binaries."""
    sample = line[:40]
    try:
        decoded = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not just a character cut in two at the end
            return "binary data"
        decoded = sample[: exc.start].decode("utf-8")
    if any(ord(ch) < 9 or 13 < ord(ch) < 32 or ord(ch) == 127 for ch in decoded):
        return "binary data"
    text = " ".join(decoded.split())
    if not text:
        return "an empty first line"
    return f"'{text}...'" if len(line) > len(sample) else f"'{text}'"


def _meta_items(line: bytes) -> dict[bytes, bytes]:
    """`##contig=<ID=20,length=63025520,assembly=b37>` -> {ID: 20, length: ..., ...}."""
    start = line.find(b"<")
    return {key: value.strip(b'"') for key, value in _META_ITEM.findall(line[start + 1 :])}


@dataclass
class _Example:
    """The first occurrence of a problem, for its message."""

    count: int = 0
    line: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def add(self, line: int, **detail: Any) -> None:
        # The earliest line, whichever pass noticed it first.
        if not self.count or line < self.line:
            self.line = line
            self.detail = detail
        self.count += 1


class VcfChecker:
    """`feed()` the raw bytes in order, any number of times; then `finish()`."""

    def __init__(self) -> None:
        self._reader = BlockReader()
        self._report: VcfReport | None = None
        self._fatal: Problem | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._line_no = 0
        self._text_bytes = 0
        # Header.
        self._in_header = True
        self._fileformat: str | None = None
        self._header_problems: list[Problem] = []
        self._contigs: dict[str, int] = {}
        self._assembly_hints: list[str] = []
        self._has_format = False
        self._pieces = 8  # what `split(b"\t", 9)` gives for a well-formed record
        self._format_types: dict[bytes, bytes] = {}
        self._samples = 0
        self._duplicate_samples: list[str] = []
        # Records.
        self._variants = 0
        self._chromosomes: dict[str, None] = {}
        self._max_positions: dict[str, int] = {}
        self._chrom: bytes | None = None
        self._last_pos = -1
        self._prev_ref = b""
        self._prev_alt = b""
        self._same_pos: set[tuple[bytes, bytes]] | None = None
        self._duplicates = 0
        self._unsorted = _Example()
        self._malformed = _Example()
        self._crlf = 0
        self._alleles = AlleleCounts()
        self._calls = GenotypeCounts(0, self._format_types)

    @property
    def failed(self) -> bool:
        """True once the input is known to be unreadable; later bytes are then skipped."""
        return self._fatal is not None

    def feed(self, chunk: bytes) -> None:
        if self._fatal is not None or self._report is not None or not chunk:
            return
        try:
            for data in self._reader.feed(chunk):
                self._data(data)
                if self._fatal is not None:
                    return
        except CompressionError as exc:
            self._compression_failed(exc)

    def finish(self) -> VcfReport:
        if self._report is None:
            self._drain()
            self._report = self._build_report()
        return self._report

    # --- text into lines --------------------------------------------------------------------

    def _compression_failed(self, exc: CompressionError) -> None:
        code = "truncated_gzip" if exc.kind == "truncated" else "corrupt_gzip"
        self._fail(problem(code, detail=exc.message))

    def _fail(self, fatal: Problem) -> None:
        if self._fatal is None:
            self._fatal = fatal
            self._pending = []

    def _drain(self) -> None:
        if self._fatal is None:
            try:
                tail = self._reader.finish()
            except CompressionError as exc:
                self._compression_failed(exc)
            else:
                if tail:
                    self._data(tail)
        if self._fatal is None and self._pending:
            # The last line had no newline: fine, it is still a line.
            last = b"".join(self._pending)
            self._pending = []
            self._lines(last)

    def _data(self, data: bytes) -> None:
        self._text_bytes += len(data)
        cut = data.rfind(b"\n")
        if cut < 0:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size > MAX_LINE:
                self._fail(problem("line_too_long", line=self._line_no + 1, limit=MAX_LINE))
            return
        if self._pending:
            self._pending.append(data[:cut])
            block = b"".join(self._pending)
        else:
            block = data[:cut]
        rest = data[cut + 1 :]
        self._pending = [rest] if rest else []
        self._pending_size = len(rest)
        self._lines(block)

    def _lines(self, block: bytes) -> None:
        lines = block.split(b"\n")
        if b"\r" in block:
            self._crlf += sum(1 for line in lines if line.endswith(b"\r"))
            lines = [line.removesuffix(b"\r") for line in lines]
        if self._in_header:
            lines = self._header(lines)
        if lines and self._fatal is None:
            self._records(lines)

    # --- header -----------------------------------------------------------------------------

    def _header(self, lines: list[bytes]) -> list[bytes]:
        """Read header lines; the record lines after the '#CHROM' line are handed back."""
        for index, line in enumerate(lines):
            self._line_no += 1
            if self._line_no == 1:
                if line.startswith(b"##fileformat=VCF"):
                    self._fileformat = _text(line[len(b"##fileformat=") :]).strip()
                elif line.startswith(b"#"):
                    self._header_problems.append(problem("no_fileformat"))
                else:
                    self._fail(problem("not_vcf", found=_describe_start(line)))
                    return []
            if line.startswith(b"##"):
                self._meta(line)
            elif line.startswith(b"#CHROM"):
                self._columns(line)
                self._in_header = False
                return lines[index + 1 :]
            elif line.startswith(b"#"):
                self._fail(
                    problem(
                        "bad_header",
                        detail=f"line {self._line_no} starts with '#' but is neither a '##' "
                        "meta line nor the '#CHROM' column line",
                    )
                )
                return []
            elif line:
                self._fail(
                    problem(
                        "bad_header",
                        detail=f"line {self._line_no} is a record, but the '#CHROM' column "
                        "line has not come yet",
                    )
                )
                return []
        return []

    def _meta(self, line: bytes) -> None:
        if line.startswith(b"##contig=<"):
            items = _meta_items(line)
            name = items.get(b"ID")
            length = items.get(b"length", b"")
            if name and length.isdigit() and len(self._contigs) < MAX_CONTIGS:
                self._contigs[_text(name)] = int(length)
            assembly = items.get(b"assembly")
            if assembly and len(self._assembly_hints) < MAX_HINTS:
                self._assembly_hints.append(_text(assembly))
        elif line.startswith(b"##FORMAT=<"):
            items = _meta_items(line)
            key = items.get(b"ID")
            if key and len(self._format_types) < MAX_FORMATS:
                self._format_types[key] = items.get(b"Type", b"")
        elif (
            line.startswith((b"##reference=", b"##assembly="))
            and len(self._assembly_hints) < MAX_HINTS
        ):
            self._assembly_hints.append(_text(line.split(b"=", 1)[1]))

    def _columns(self, line: bytes) -> None:
        columns = line.split(b"\t")
        if columns[:8] != FIXED_COLUMNS:
            self._fail(
                problem(
                    "bad_header",
                    detail="the '#CHROM' line must begin with the 8 tab-separated columns "
                    "#CHROM POS ID REF ALT QUAL FILTER INFO",
                )
            )
            return
        if len(columns) > 8 and columns[8] != b"FORMAT":
            self._fail(
                problem(
                    "bad_header",
                    detail=f"the 9th column of the '#CHROM' line must be FORMAT, not "
                    f"'{_text(columns[8][:40])}'",
                )
            )
            return
        self._has_format = len(columns) > 8
        names = columns[9:]
        self._samples = len(names)
        self._pieces = 10 if names else (9 if self._has_format else 8)
        self._calls = GenotypeCounts(self._samples, self._format_types)
        if not names:
            self._header_problems.append(problem("no_samples"))
            return
        seen: set[bytes] = set()
        duplicates: dict[bytes, None] = {}
        for name in names:
            if name in seen:
                duplicates[name] = None
            seen.add(name)
        if duplicates:
            self._duplicate_samples = [_text(name) for name in duplicates]
            self._header_problems.append(
                problem(
                    "duplicate_samples",
                    count=len(duplicates),
                    names=vcf.shown(self._duplicate_samples),
                )
            )

    # --- records ----------------------------------------------------------------------------

    def _records(self, lines: Sequence[bytes]) -> None:
        """Record lines, one by one: per record a split of the fixed columns and O(1)
        Python; alleles and genotype columns are then counted per block, in C."""
        first_line = self._line_no + 1
        self._line_no += len(lines)
        samples = self._samples
        pieces = self._pieces
        malformed = self._malformed
        chrom_now = self._chrom
        last_pos = self._last_pos
        prev_ref = self._prev_ref
        prev_alt = self._prev_alt
        same_pos = self._same_pos
        variants = duplicates = 0
        refs: list[bytes] = []
        alts: list[bytes] = []
        formats: list[bytes] = []
        tails: list[bytes] = []
        numbers: list[int] = []  # the line of each record in `tails`
        for line_no, line in enumerate(lines, first_line):
            fields = line.split(b"\t", 9)
            if len(fields) != pieces:
                if not line:
                    continue  # blank lines carry nothing
                malformed.add(
                    line_no,
                    detail=f"{len(fields)} columns, the header has "
                    f"{pieces if samples == 0 else 9 + samples}",
                )
                continue
            chrom = fields[0]
            try:
                pos = int(fields[1])
            except ValueError:
                malformed.add(line_no, detail=f"POS '{_text(fields[1][:20])}' is not a number")
                continue
            if pos < 0 or not chrom:
                malformed.add(line_no, detail="CHROM is empty or POS is negative")
                continue
            variants += 1
            ref = fields[3]
            alt = fields[4]
            if chrom != chrom_now:
                self._leave_chromosome(chrom_now, last_pos)
                if self._enter_chromosome(chrom):
                    self._unsorted.add(
                        line_no,
                        chrom=_text(chrom),
                        pos=pos,
                        previous=f"{_text(chrom_now or b'')}:{last_pos}",
                    )
                chrom_now = chrom
                last_pos = -1
            if pos > last_pos:
                last_pos = pos
                prev_ref = ref
                prev_alt = alt
                same_pos = None
            elif pos == last_pos:
                if same_pos is None:
                    same_pos = {(prev_ref, prev_alt)}
                key = (ref, alt)
                if key in same_pos:
                    duplicates += 1
                else:
                    same_pos.add(key)
            else:
                self._unsorted.add(
                    line_no, chrom=_text(chrom), pos=pos, previous=f"{_text(chrom)}:{last_pos}"
                )
            refs.append(ref)
            alts.append(alt)
            if samples:
                formats.append(fields[8])
                tails.append(fields[9])
                numbers.append(line_no)
        self._chrom = chrom_now
        self._last_pos = last_pos
        self._prev_ref = prev_ref
        self._prev_alt = prev_alt
        self._same_pos = same_pos
        self._variants += variants
        self._duplicates += duplicates
        self._alleles.add(refs, alts)
        if formats:
            for index in self._calls.add(formats, tails):
                columns = tails[index].count(b"\t") + 10
                malformed.add(
                    numbers[index], detail=f"{columns} columns, the header has {9 + samples}"
                )

    def _leave_chromosome(self, chrom: bytes | None, last_pos: int) -> None:
        if chrom is None:
            return
        name = _text(chrom)
        if name in self._chromosomes:
            self._max_positions[name] = max(self._max_positions.get(name, -1), last_pos)

    def _enter_chromosome(self, chrom: bytes) -> bool:
        """Note a chromosome starting; True when it had come before (records unsorted)."""
        name = _text(chrom)
        if name in self._chromosomes:
            return True
        if len(self._chromosomes) < MAX_CHROMOSOMES:
            self._chromosomes[name] = None
        return False

    # --- the report -------------------------------------------------------------------------

    def _format(self) -> tuple[str, bool | None, list[Problem]]:
        compression = self._reader.compression or Compression.UNCOMPRESSED
        if compression is Compression.UNCOMPRESSED:
            return compression.value, None, [problem("uncompressed")]
        if compression is Compression.GZIP:
            return compression.value, None, [problem("not_bgzf")]
        eof = self._reader.eof_block
        return compression.value, eof, [] if eof else [problem("missing_eof")]

    def _record_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        if self._crlf:
            problems.append(problem("crlf_line_ends"))
        if self._malformed.count:
            problems.append(
                problem(
                    "malformed_records",
                    count=self._malformed.count,
                    line=self._malformed.line,
                    **self._malformed.detail,
                )
            )
        if not self._variants and not self._malformed.count:
            problems.append(problem("no_variants"))
        if len(self._chromosomes) > 1:
            problems.append(problem("multiple_chromosomes", names=vcf.shown(self._chromosomes)))
        if self._unsorted.count:
            problems.append(
                problem(
                    "unsorted",
                    count=self._unsorted.count,
                    line=self._unsorted.line,
                    **self._unsorted.detail,
                )
            )
        if self._calls.no_gt:
            problems.append(problem("no_genotypes", count=self._calls.no_gt))
        if self._duplicates:
            problems.append(problem("duplicate_records", count=self._duplicates))
        return problems

    def _build_report(self) -> VcfReport:
        self._leave_chromosome(self._chrom, self._last_pos)
        if self._fatal is None and self._text_bytes == 0:
            self._fatal = problem("empty_file")
        if self._fatal is None and self._in_header:
            self._fatal = problem(
                "bad_header", detail="the file ends before the '#CHROM' column line"
            )
        fmt, eof, problems = self._format()
        if self._fatal is not None:
            # One clear reason, and no figures: how much was read before the damage showed
            # depends on how the bytes arrived, and the file is refused anyway.
            return VcfReport.unusable(fmt, self._fatal)
        names = list(self._chromosomes)
        build = vcf.genome_build(
            chromosomes=names,
            contigs=self._contigs,
            assembly_hints=self._assembly_hints,
            max_positions=self._max_positions,
        )
        problems += self._header_problems
        problems += self._record_problems()
        problems += build.problems
        alleles = self._alleles
        return VcfReport(
            format=fmt,
            bgzf_eof=eof,
            fileformat=self._fileformat,
            samples=self._samples,
            duplicate_samples=tuple(self._duplicate_samples[:SHOWN_NAMES]),
            variants=self._variants,
            chromosomes=tuple(names[:SHOWN_NAMES]),
            chr_prefix=vcf.has_chr_prefix(names[0]) if names else None,
            sorted=self._unsorted.count == 0,
            duplicate_records=self._duplicates,
            phased_share=self._calls.phased_share,
            missing_share=self._calls.missing_share,
            snps=alleles.snps,
            indels=alleles.indels,
            multiallelic=alleles.multiallelic,
            other=alleles.other,
            build=build.build,
            build_source=build.source,
            problems=tuple(problems),
        )


# --- entry points -------------------------------------------------------------------------


def check_bytes(chunks: Iterable[bytes]) -> VcfReport:
    """Check bytes already in hand (an iterable of pieces)."""
    checker = VcfChecker()
    for chunk in chunks:
        checker.feed(chunk)
    return checker.finish()


def check_path(path: Path | str, *, read_size: int = READ_SIZE) -> VcfReport:
    """Check a local file, read in bounded pieces."""
    checker = VcfChecker()
    with open(path, "rb") as handle:
        while chunk := handle.read(read_size):
            checker.feed(chunk)
            if checker.failed:
                break
    return checker.finish()


async def check_stream(chunks: AsyncIterable[bytes]) -> VcfReport:
    """Check a stream of bytes; the CPU work runs in a thread, off the event loop."""
    checker = VcfChecker()
    async for chunk in chunks:
        if not checker.failed:
            await asyncio.to_thread(checker.feed, chunk)
    return await asyncio.to_thread(checker.finish)

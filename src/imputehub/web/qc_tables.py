"""A job's QC statistics files as small tables for its page: the first rows of each,
read through the file records in bounded chunks (never a whole file).

Michigan's servers and the local engine write the same files: `qc_report.txt` ("Key:
value" lines, indented under each input file) and tab-separated lists under statistics/
(`snps-excluded.txt`: #Position, FilterType, Info; `chunks-excluded.txt`; ...).
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

from imputehub.db.models import StoredFile
from imputehub.domain.errors import NotFound
from imputehub.files import records
from imputehub.files.storage import Storage

QC_FILES = ("qc_report.txt", "snps-excluded.txt", "chunks-excluded.txt", "snps-typed-only.txt")
MAX_BYTES = 64 * 1024  # read at most this much of each file
MAX_ROWS = 50
MAX_COLUMNS = 12
MAX_CELL = 300
READ_CHUNK = 16 * 1024


@dataclass(frozen=True, kw_only=True)
class QcTable:
    file_id: str
    filename: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    more: bool  # rows (or bytes) beyond what is shown


def is_qc_file(filename: str) -> bool:
    return filename.rsplit("/", 1)[-1] in QC_FILES


def _cell(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def parse(lines: Sequence[str]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """A header and rows: tab-separated files by their columns; a report by "Key: value",
    each under the heading line above it (a line without a value, or followed by indented
    lines, such as "Input file: study.vcf.gz")."""
    kept = [line.rstrip("\r") for line in lines if line.strip()]
    if not kept or kept[0].startswith("#") or any("\t" in line for line in kept):
        header: tuple[str, ...] = ("Value",)
        if kept and kept[0].startswith("#"):
            header = tuple(_cell(c) for c in kept[0].lstrip("#").split("\t")[:MAX_COLUMNS])
            kept = kept[1:]
        return header, [tuple(_cell(c) for c in line.split("\t")[:MAX_COLUMNS]) for line in kept]
    rows: list[tuple[str, ...]] = []
    section = ""
    for index, line in enumerate(kept):
        key, sep, value = line.strip().partition(":")
        indented = line.startswith((" ", "\t"))
        opens = index + 1 < len(kept) and kept[index + 1].startswith((" ", "\t"))
        if not indented and (opens or not value.strip()):
            section = _cell(line.strip().rstrip(":"))
        elif sep:
            rows.append((section, _cell(key), _cell(value)))
        else:
            rows.append((section, _cell(line), ""))
    return ("Section", "Figure", "Value"), rows


async def _first_lines(storage: Storage, record: StoredFile) -> tuple[list[str], bool]:
    """Up to MAX_ROWS + 1 lines from the first MAX_BYTES, and whether bytes were left out."""
    end = min(record.size, MAX_BYTES)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    chunks = await records.read_content(storage, record, start=0, end=end, chunk_size=READ_CHUNK)
    text = ""
    async for chunk in chunks:
        text += decoder.decode(chunk)
        if text.count("\n") > MAX_ROWS + 1:
            break
    lines = text.splitlines()
    cut = record.size > end
    if cut and lines and not text.endswith("\n"):
        lines = lines[:-1]  # the last line was cut in the middle
    return lines[: MAX_ROWS + 2], cut or len(lines) > MAX_ROWS + 1


async def read_tables(storage: Storage, results: Sequence[StoredFile]) -> list[QcTable]:
    """The QC files among `results`, each as a table of its first rows."""
    tables = []
    for record in results:
        if not is_qc_file(record.filename) or record.size == 0:
            continue
        try:
            lines, cut = await _first_lines(storage, record)
        except NotFound:
            continue  # its bytes are gone (retention); the results list says so
        header, rows = parse(lines)
        tables.append(
            QcTable(
                file_id=record.id,
                filename=record.filename,
                header=header,
                rows=tuple(rows[:MAX_ROWS]),
                more=cut or len(rows) > MAX_ROWS,
            )
        )
    return tables

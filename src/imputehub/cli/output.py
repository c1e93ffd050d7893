"""How the command line shows things: rich tables for people, JSON for scripts.

rich is imported on first use, not with the module: commands that print plain lines or
JSON should not pay for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console


def console() -> Console:
    """A console on standard output (made per use: it reads the width from `COLUMNS`)."""
    from rich.console import Console

    return Console(highlight=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def echo(message: str) -> None:
    typer.echo(message)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def text(value: Any) -> str:
    """A cell: empty for missing values, lists joined, times shortened."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(text(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and _looks_like_time(value):
        return short_time(value)
    return str(value)


def short_time(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _looks_like_time(value: str) -> bool:
    return len(value) >= 19 and value[4] == "-" and value[10] == "T"


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{size} B"


def print_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    title: str | None = None,
) -> None:
    """A table of `rows`; `columns` are (key, heading) pairs."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_lines=False)
    for _key, heading in columns:
        table.add_column(heading, overflow="fold")
    for row in rows:
        # Text(), not str: values from the hub are data, never rich markup.
        table.add_row(*(Text(text(row.get(key))) for key, _heading in columns))
    console().print(table)


def print_record(record: Mapping[str, Any], fields: Sequence[tuple[str, str]]) -> None:
    """One object as a two-column table of its `fields` ((key, label) pairs)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, label in fields:
        value = record.get(key)
        if value is None or value == [] or value == "":
            continue
        table.add_row(label, Text(text(value)))
    console().print(table)

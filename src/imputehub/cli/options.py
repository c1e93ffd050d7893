"""Options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The hub, e.g. https://hub.example.org (env IMPUTEHUB_URL; default: the hub "
        "you logged in to).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where the SQLite database, secret key and files live (env IMPUTEHUB_DATA_DIR).",
    ),
]

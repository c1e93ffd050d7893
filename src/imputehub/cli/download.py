"""Fetching a job's result files: streamed to disk, checked, never half-written.

Each file goes to a hidden temporary name next to its destination and is renamed only
after its SHA-256 matched the hub's; a file already present with the right checksum is
skipped, so an interrupted download can simply be run again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imputehub.cli.client import HubClient, segment
from imputehub.cli.errors import CliError

CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ResultFile:
    id: str
    filename: str
    size: int
    sha256: str
    download_url: str

    @classmethod
    def from_api(cls, data: Any) -> ResultFile:
        try:
            return cls(
                id=str(data["id"]),
                filename=str(data["filename"]),
                size=int(data["size"]),
                sha256=str(data["sha256"]).lower(),
                download_url=str(data["download_url"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CliError(f"the hub listed a result file without {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class Outcome:
    file: ResultFile
    path: Path
    downloaded: bool  # False: already present with the right checksum


def safe_filename(name: str, fallback: str) -> str:
    """A plain file name to write under the output dir: no directories, no dot-names."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    if base in ("", ".", "..") or base.startswith("."):
        return fallback
    return base[:255]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def list_results(client: HubClient, job_id: str) -> list[ResultFile]:
    listed = client.get(f"/jobs/{segment(job_id)}/results")
    if not isinstance(listed, list):
        raise CliError("the hub's list of result files is not a list")
    return [ResultFile.from_api(item) for item in listed]


def download_results(
    client: HubClient,
    files: list[ResultFile],
    output: Path,
    *,
    on_done: Callable[[Outcome], None] = lambda _outcome: None,
) -> list[Outcome]:
    output.mkdir(parents=True, exist_ok=True)
    outcomes = []
    taken: set[str] = set()
    for file in files:
        name = safe_filename(file.filename, fallback=file.id)
        if name in taken:  # two results with one name must not overwrite each other
            name = f"{file.id}-{name}"
        taken.add(name)
        outcome = _download_one(client, file, output / name)
        on_done(outcome)
        outcomes.append(outcome)
    return outcomes


def _download_one(client: HubClient, file: ResultFile, dest: Path) -> Outcome:
    if dest.is_file() and dest.stat().st_size == file.size and sha256_of(dest) == file.sha256:
        return Outcome(file=file, path=dest, downloaded=False)
    tmp = dest.with_name(f".{dest.name}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        with client.stream(file.download_url) as response, tmp.open("wb") as handle:
            for chunk in response.iter_bytes(CHUNK_SIZE):
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if digest.hexdigest() != file.sha256 or size != file.size:
            raise CliError(
                f"{dest.name}: the download does not match the hub's checksum "
                f"(got {size} bytes with SHA-256 {digest.hexdigest()}, expected {file.size} "
                f"bytes with {file.sha256}); nothing was kept, try again"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return Outcome(file=file, path=dest, downloaded=True)

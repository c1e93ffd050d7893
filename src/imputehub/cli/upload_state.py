"""What `imputehub upload` remembers between runs, so a re-run resumes instead of restarting.

One JSON file, `uploads.json` in the client config dir (owner-only, like the login), maps a
hub and a local file to the hub's upload id. An entry is only reused while the file looks
unchanged (same size and modification time) and is forgotten once the upload completes.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imputehub.cli.errors import CliError

STATE_FILE = "uploads.json"


@dataclass(frozen=True, kw_only=True)
class PendingUpload:
    hub: str
    upload_id: str
    path: str
    size: int
    mtime_ns: int
    part_size: int
    sha256: str

    def matches(self, path: Path, info: os.stat_result) -> bool:
        return (
            self.path == str(path)
            and self.size == info.st_size
            and self.mtime_ns == info.st_mtime_ns
        )


class UploadStateStore:
    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.path = config_dir / STATE_FILE

    @staticmethod
    def _key(hub: str, path: Path) -> str:
        return f"{hub} {path}"

    def get(self, hub: str, path: Path) -> PendingUpload | None:
        entry = self._load().get(self._key(hub, path))
        if not isinstance(entry, dict):
            return None
        try:
            return PendingUpload(**entry)
        except TypeError:
            return None  # written by another version: start afresh

    def put(self, entry: PendingUpload) -> None:
        entries = self._load()
        entries[self._key(entry.hub, Path(entry.path))] = asdict(entry)
        self._save(entries)

    def forget(self, hub: str, path: Path) -> None:
        entries = self._load()
        if entries.pop(self._key(hub, path), None) is not None:
            self._save(entries)

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {self.path}: {exc}; delete it to start afresh") from exc
        uploads = data.get("uploads") if isinstance(data, dict) else None
        return uploads if isinstance(uploads, dict) else {}

    def _save(self, entries: dict[str, Any]) -> None:
        self.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(self.config_dir.stat().st_mode) & 0o077:
            self.config_dir.chmod(0o700)
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"uploads": entries}, handle, indent=1)
                handle.write("\n")
            # A kill right after must still find the entry: it is how a re-run resumes.
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

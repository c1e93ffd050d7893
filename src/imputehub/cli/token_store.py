"""Where `imputehub login` keeps the hub's URL and a personal API token.

One JSON file, `credentials.json`, readable by its owner only (file 0600, directory 0700),
written to a temporary name and renamed so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from imputehub.cli.errors import CliError

CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True, kw_only=True)
class StoredLogin:
    url: str
    token: str
    token_id: str | None = None


def credentials_path(config_dir: Path) -> Path:
    return config_dir / CREDENTIALS_FILE


def save_login(config_dir: Path, login: StoredLogin) -> Path:
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode does not apply to a directory that already existed.
    if stat.S_IMODE(config_dir.stat().st_mode) & 0o077:
        config_dir.chmod(0o700)
    path = credentials_path(config_dir)
    tmp = path.with_name(f".{CREDENTIALS_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"url": login.url, "token": login.token, "token_id": login.token_id}, handle)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_login(config_dir: Path) -> StoredLogin | None:
    path = credentials_path(config_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}; run `imputehub login` again") from exc
    if not (
        isinstance(data, dict)
        and isinstance(data.get("url"), str)
        and isinstance(data.get("token"), str)
    ):
        raise CliError(f"{path} is not a login file; run `imputehub login` again")
    token_id = data.get("token_id")
    return StoredLogin(
        url=data["url"],
        token=data["token"],
        token_id=token_id if isinstance(token_id, str) else None,
    )


def forget_login(config_dir: Path) -> bool:
    """Delete the stored login; False when there was none."""
    try:
        credentials_path(config_dir).unlink()
    except FileNotFoundError:
        return False
    return True

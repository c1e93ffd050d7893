"""Helpers for the resumable upload tests: a VCF cut in parts, and what storage holds."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from imputehub.config import Settings
from imputehub.db.models import Base, StoredFile, Upload, UploadPart
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.vcf import make_vcf

PART = 1024  # local storage has no minimum part size: small parts keep the tests fast
UPLOADS = "/api/v1/uploads"


def vcf(samples: int = 20, variants: int = 300) -> bytes:
    """A small valid bgzipped VCF of a few parts."""
    return make_vcf(samples=samples, variants=variants)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(content: bytes, part_size: int = PART) -> list[bytes]:
    return [content[i : i + part_size] for i in range(0, len(content), part_size)]


async def init(
    client: httpx.AsyncClient,
    actor: Actor,
    content: bytes,
    *,
    part_size: int | None = PART,
    filename: str = "study.chr20.vcf.gz",
    checksum: bool = True,
    **fields: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"filename": filename, "size": len(content)}
    if part_size is not None:
        body["part_size"] = part_size
    if checksum:
        body["sha256"] = sha256(content)
    body.update(fields)
    return await client.post(f"{UPLOADS}/init", json=body, headers=actor.headers)


async def started(
    client: httpx.AsyncClient, actor: Actor, content: bytes, **fields: Any
) -> dict[str, Any]:
    response = await init(client, actor, content, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def put_part(
    client: httpx.AsyncClient,
    actor: Actor,
    upload_id: str,
    index: int,
    data: bytes,
    *,
    checksum: str | None = None,
) -> httpx.Response:
    headers = {**actor.headers, "Content-Type": "application/octet-stream"}
    if checksum is not None:
        headers["X-Part-SHA256"] = checksum
    return await client.put(f"{UPLOADS}/{upload_id}/part/{index}", content=data, headers=headers)


async def send_parts(
    client: httpx.AsyncClient, actor: Actor, upload_id: str, parts: list[bytes]
) -> None:
    for index, data in enumerate(parts):
        response = await put_part(client, actor, upload_id, index, data, checksum=sha256(data))
        assert response.status_code == 200, response.text


async def complete(client: httpx.AsyncClient, actor: Actor, upload_id: str) -> httpx.Response:
    return await client.post(f"{UPLOADS}/{upload_id}/complete", headers=actor.headers)


async def upload_whole(
    client: httpx.AsyncClient, actor: Actor, content: bytes, **fields: Any
) -> dict[str, Any]:
    plan = await started(client, actor, content, **fields)
    await send_parts(client, actor, plan["upload_id"], split(content, plan["part_size"]))
    response = await complete(client, actor, plan["upload_id"])
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


def storage_root(settings: Settings) -> Path:
    return settings.data_dir / "files"


def stored_paths(settings: Settings) -> set[str]:
    """Every file under the storage root (parts of open uploads included)."""
    root = storage_root(settings)
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def part_paths(settings: Settings) -> set[str]:
    return {path for path in stored_paths(settings) if path.startswith(".multipart/")}


def object_paths(settings: Settings) -> set[str]:
    return stored_paths(settings) - part_paths(settings)


async def count(runtime: Runtime, model: type[Base]) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def rows(runtime: Runtime) -> tuple[int, int, int]:
    """(stored files, uploads, upload parts) in the database."""
    return (
        await count(runtime, StoredFile),
        await count(runtime, Upload),
        await count(runtime, UploadPart),
    )

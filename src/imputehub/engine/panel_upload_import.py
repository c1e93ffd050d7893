"""Importing a local-engine reference panel from a file stored in the hub (an admin's upload):
the same checks and copy as `imputehub panels import`, for admins in the console.

The stored bytes are streamed from storage (local disk or S3, in bounded chunks) into a
working directory beside the engine's panel store, indexed there with `tabix -p vcf`
(an upload carries no index), handed to engine/panel_import.py (every check: BGZF, header,
samples, phased and complete genotypes, the build the contig lengths name) and recorded as
the local engine's reference panel. The working directory goes whatever happens; a refused
file leaves nothing in the store and no row.

It runs in the request (minutes for a large panel: the copy from storage, the index and the
checks each read the whole file once); the database is held only for short transactions
before and after, never during the work on the file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from imputehub.accounts.users import require_admin
from imputehub.db.models import ReferencePanel, User
from imputehub.domain.errors import InvalidInput
from imputehub.engine import panel_import
from imputehub.engine.panel_import import PanelImportError, PanelTools
from imputehub.engine.panel_store import PANEL_ID, PanelMeta, PanelStore
from imputehub.files import records
from imputehub.monitoring import audit
from imputehub.registry import local_engine, rules
from imputehub.runtime import Runtime

log = logging.getLogger("imputehub.engine")

IMPORTS_DIR = "imports"  # under the engine dir, beside panels/: one filesystem, no /tmp
WORKING_NAME = "panel.vcf.gz"
_MAX_TOOL_ERROR = 2000


@dataclass(frozen=True, kw_only=True)
class PanelRequest:
    """What the admin asks for: which stored file becomes which panel of which service."""

    file_id: str
    service: str  # the local engine service, id or slug
    display_name: str
    build: str
    panel_id: str | None = None  # the engine's id and the hub's slug; None: from the name
    populations: Sequence[str] = ()
    description: str = ""
    replace: bool = False


@dataclass(frozen=True, kw_only=True)
class ImportedPanel:
    panel: ReferencePanel
    meta: PanelMeta
    created: bool
    seconds: float  # how long the work on the file took


def _panel_id(request: PanelRequest, display_name: str) -> str:
    chosen = (request.panel_id or "").strip() or rules.slugify(display_name)
    if not chosen:
        raise InvalidInput(
            "cannot make a panel id from the display name; give one", field="panel_id"
        )
    if not PANEL_ID.match(chosen):
        raise InvalidInput(
            f"'{chosen}' is not a valid panel id: lower-case letters, digits, '.', '_' and "
            "'-', starting with a letter or digit, at most 100 characters",
            field="panel_id",
        )
    return chosen


def _slug(panel_id: str) -> str | None:
    """The panel id as the hub's slug when it is one (else the registry makes one)."""
    try:
        return rules.check_slug(panel_id)
    except InvalidInput:
        return None


async def import_stored_panel(
    runtime: Runtime,
    admin: User,
    request: PanelRequest,
    *,
    origin: audit.Origin | None,
    now: datetime,
    tools: PanelTools | None = None,
) -> ImportedPanel:
    """Check `request`, then stream, index, check and install the file; record the panel.

    InvalidInput for a bad field (before anything is read), PanelImportError (with a
    message for the admin) when the file cannot be a reference panel.
    """
    require_admin(admin)
    tools = tools or PanelTools()
    fields = local_engine.check_panel_fields(
        display_name=request.display_name,
        build=request.build,
        populations=request.populations,
        description=request.description,
    )
    panel_id = _panel_id(request, fields.display_name)
    slug = _slug(panel_id)
    store = PanelStore.in_engine_dir(runtime.settings.resolved_engine_dir)
    async with runtime.db.session() as session:
        record = await records.get_file(session, admin, request.file_id)
        service = await local_engine.local_service(session, request.service)
        service_ref, filename = service.id, record.filename
    if store.is_offered(panel_id) and not request.replace:
        raise InvalidInput(
            f"the local engine already has a reference panel '{panel_id}'; choose another id, "
            "or tick “replace” to import this file in its place",
            code="panel_exists",
            field="panel_id",
        )

    started = time.monotonic()
    work = runtime.settings.resolved_engine_dir / IMPORTS_DIR / secrets.token_hex(8)
    try:
        await asyncio.to_thread(work.mkdir, parents=True)
        vcf = work / WORKING_NAME
        chunks = await records.read_content(runtime.storage, record)
        await _write(vcf, chunks)
        # The checks that need no tool first, so a plain or gzip file gets their message
        # rather than tabix's.
        await asyncio.to_thread(panel_import.check_bgzf, vcf)
        await asyncio.to_thread(_index, vcf, tools)
        meta = await asyncio.to_thread(
            panel_import.import_panel,
            store,
            vcf,
            panel_id=panel_id,
            display_name=fields.display_name,
            build=fields.build,
            populations=fields.populations,
            description=fields.description,
            tools=tools,
            replace=request.replace,
        )
    except PanelImportError as exc:
        # The engine's messages name the working copy; the admin knows the file by its name.
        raise PanelImportError(exc.message.replace(WORKING_NAME, filename)) from None
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    # Where the panel came from (the working copy's path is gone): the stored file.
    meta = dataclasses.replace(
        meta, extra={**meta.extra, "source": f"stored file {record.id} ({filename})"}
    )
    await asyncio.to_thread(store.save_meta, meta)
    seconds = time.monotonic() - started

    async with runtime.db.session() as session:
        service = await local_engine.local_service(session, service_ref)
        row, created = await local_engine.record_local_panel(
            session, service, meta, now=now, slug=slug
        )
        await audit.record(
            session,
            action="panel_imported",
            actor=admin,
            now=now,
            target_type="reference_panel",
            target_id=row.id,
            origin=origin,
            details={
                "panel_id": meta.panel_id,
                "file_id": record.id,
                "service": service.slug,
                "replaced": not created,
            },
        )
    log.info(
        "local panel imported from a stored file",
        extra={
            "action": "panel_imported",
            "reference_panel_id": row.id,
            "file_id": record.id,
            "seconds": round(seconds, 3),
        },
    )
    return ImportedPanel(panel=row, meta=meta, created=created, seconds=seconds)


async def _write(path: Path, chunks: AsyncIterator[bytes]) -> None:
    """The stored bytes into `path`, one bounded chunk at a time."""
    handle = await asyncio.to_thread(path.open, "wb")
    try:
        async for chunk in chunks:
            await asyncio.to_thread(handle.write, chunk)
    finally:
        await asyncio.to_thread(handle.close)


def _index(vcf: Path, tools: PanelTools) -> None:
    """A tabix index next to the working copy (which the import then checks and copies)."""
    try:
        done = subprocess.run(  # noqa: S603
            [tools.tabix, "-f", "-p", "vcf", str(vcf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
    except FileNotFoundError:
        raise PanelImportError(
            f"{tools.tabix} is not installed: install the Debian package tabix"
        ) from None
    if done.returncode != 0:
        text = done.stderr[-_MAX_TOOL_ERROR:].decode(errors="replace").strip()
        detail = text.splitlines()[-1] if text else f"exit code {done.returncode}"
        raise PanelImportError(
            f"{WORKING_NAME} could not be indexed (is it a sorted VCF?): {detail}"
        )

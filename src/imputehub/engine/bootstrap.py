"""First start: the hub registers its own engine and a demo panel, so it imputes out of the box.

On `imputehub serve`, when `engine_bootstrap` is on, no service of type `local` exists yet
and the marker `<engine_dir>/.bootstrapped` is absent: simulate the demo panel (seconds),
import it into the engine's store as `demo`, register the service "Local engine (Beagle
5.4)" (slug `local`) with that panel (slug `demo`), then write the marker. The marker is the
memory of that one decision: an admin who later deactivates (or deletes) the local service
does not get it back on the next start.

Crash-safe by order: the panel files first (an import not finished is never offered; a
finished one is reused), the two rows in one transaction, the marker last.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from imputehub.config import Settings
from imputehub.db.session import Database
from imputehub.domain.errors import ImputehubError
from imputehub.engine import demo
from imputehub.engine.panel_import import PanelTools, import_panel
from imputehub.engine.panel_store import PanelMeta, PanelStore
from imputehub.registry import local_engine

log = logging.getLogger("imputehub.engine")

MARKER = ".bootstrapped"
SERVICE_NAME = "Local engine (Beagle 5.4)"
SERVICE_SLUG = "local"
# Services need an http(s) base URL (registry rules); the local connector never calls it.
SERVICE_BASE_URL = "http://localhost"
SERVICE_DESCRIPTION = (
    "The hub's own imputation engine: Beagle 5.4 phases and imputes on the hub's workers, "
    "against the reference panels imported with `imputehub panels import`."
)
DEMO_PANEL_ID = "demo"
DEMO_DISPLAY_NAME = "Demo panel (simulated, chr20, hg19)"
DEMO_POPULATIONS = ("demo",)
DEMO_DESCRIPTION = (
    "A simulated 1 Mb stretch of chromosome 20 (hg19): 500 individuals from a growing "
    "population (msprime, fixed seed). `imputehub testdata --panel demo` writes matching "
    "target files."
)


@dataclass(frozen=True, kw_only=True)
class Bootstrapped:
    """What the bootstrap registered."""

    service_slug: str
    panel_slug: str
    panel: PanelMeta


async def bootstrap_local_engine(
    settings: Settings, *, now: datetime, db: Database | None = None
) -> Bootstrapped | None:
    """Register the local engine and its demo panel once; None when there was nothing to do.

    Without `db`, a database of the settings' URL is opened for the call. A demo panel that
    cannot be made (e.g. bcftools missing) is logged and left for the next start.
    """
    if not settings.engine_bootstrap:
        return None
    engine_dir = settings.resolved_engine_dir
    marker = engine_dir / MARKER
    if marker.exists():
        return None
    own_db = db is None
    database = db if db is not None else Database(settings.resolved_database_url)
    try:
        return await _bootstrap(database, engine_dir, marker, now=now)
    finally:
        if own_db:
            await database.dispose()


async def _bootstrap(
    db: Database, engine_dir: Path, marker: Path, *, now: datetime
) -> Bootstrapped | None:
    async with db.session() as session:
        exists = await local_engine.has_local_service(session)
    if exists:
        # Registered by an admin (or by an earlier start): the decision is made.
        _write_marker(marker)
        return None
    store = PanelStore.in_engine_dir(engine_dir)
    try:
        meta = await asyncio.to_thread(_demo_panel, store, engine_dir)
    except (ImputehubError, OSError, subprocess.CalledProcessError) as exc:
        log.warning(
            "could not set up the local engine's demo panel (will try again at the next start): %s",
            exc.message if isinstance(exc, ImputehubError) else str(exc),
            extra={"action": "local_engine_bootstrap_failed"},
        )
        return None
    async with db.session() as session:
        # Two first starts at once (several `serve` on one new database): one registers.
        await local_engine.lock_local_registration(session)
        if await local_engine.has_local_service(session):
            _write_marker(marker)
            return None
        service = await local_engine.create_local_service(
            session,
            name=SERVICE_NAME,
            slug=SERVICE_SLUG,
            base_url=SERVICE_BASE_URL,
            description=SERVICE_DESCRIPTION,
            now=now,
        )
        panel, _ = await local_engine.record_local_panel(
            session, service, meta, now=now, slug=DEMO_PANEL_ID
        )
        done = Bootstrapped(service_slug=service.slug, panel_slug=panel.slug, panel=meta)
    _write_marker(marker)
    log.info(
        "registered the local engine as service '%s' with the demo panel '%s' "
        "(%d samples, %d variants, contig %s)",
        done.service_slug,
        done.panel_slug,
        meta.sample_count,
        meta.variant_count,
        ",".join(meta.contigs),
        extra={"action": "local_engine_bootstrapped"},
    )
    return done


def _demo_panel(store: PanelStore, engine_dir: Path) -> PanelMeta:
    """The demo panel in the store: reused when a previous start got that far."""
    if store.is_offered(DEMO_PANEL_ID):
        return store.load(DEMO_PANEL_ID)
    engine_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".demo-", dir=engine_dir))
    try:
        simulated = demo.simulate_demo_panel(scratch)
        return import_panel(
            store,
            simulated.panel,
            panel_id=DEMO_PANEL_ID,
            display_name=DEMO_DISPLAY_NAME,
            build=simulated.build,
            populations=DEMO_POPULATIONS,
            description=DEMO_DESCRIPTION,
            tools=PanelTools(),
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_marker(marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(
        "The first start registered the local engine (or found one); delete this file to "
        "let the next `imputehub serve` do it again.\n",
        encoding="utf-8",
    )

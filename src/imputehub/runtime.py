"""The runtime: the long-lived objects one process shares (database, storage, clock...).

Built once from `Settings` by `build_runtime`; passed to the app and the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imputehub.accounts.vault import Vault
from imputehub.clock import Clock, SystemClock
from imputehub.config import Settings, load_secret_key
from imputehub.connectors.base import Connector
from imputehub.connectors.clients import ClientPool
from imputehub.connectors.dnastack import DnastackConnector
from imputehub.connectors.local import EngineConfig, LocalConnector
from imputehub.connectors.michigan import MichiganConnector
from imputehub.connectors.wes import WesConnector
from imputehub.db.session import Database
from imputehub.files.storage import LocalStorage, Storage
from imputehub.notify.stream_slots import StreamSlots

if TYPE_CHECKING:
    from imputehub.notify.event_feed import EventFeed


@dataclass(kw_only=True)
class Runtime:
    settings: Settings
    db: Database
    storage: Storage
    clock: Clock
    secret_key: str
    vault: Vault
    # api_type -> connector; later issues register the real ones.
    connectors: Mapping[str, Connector] = field(default_factory=dict)
    # Set when the API made work due at once (a new job, a cancel, a retry): a worker in
    # this process (`serve`) starts on it now instead of after its poll interval. Workers in
    # other processes cannot hear it and find the work at their next poll.
    work_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Live event streams open in this process, per user (the cap is per process).
    stream_slots: StreamSlots = field(default_factory=StreamSlots)
    # The keep-alive HTTP clients the connectors share (connectors/clients.py).
    clients: ClientPool = field(default_factory=ClientPool)
    # The one reader of new events all live streams share; made by the first (live.feed).
    live_feed: EventFeed | None = None

    def wake_workers(self) -> None:
        self.work_ready.set()

    async def close(self) -> None:
        if self.live_feed is not None:
            await self.live_feed.close()
        await self.clients.aclose()
        await self.db.dispose()
        close_storage = getattr(self.storage, "close", None)
        if close_storage is not None:
            close_storage()


def open_storage(settings: Settings) -> Storage:
    """S3 when IMPUTEHUB_STORAGE_URL is set, else local disk under the data dir."""
    if settings.storage_url is None:
        return LocalStorage(settings.data_dir / "files")
    # Imported here: boto3 takes a while to import and local installs never need it.
    from imputehub.files.s3 import S3Storage

    return S3Storage.from_url(
        settings.storage_url.get_secret_value(), spool_dir=settings.data_dir / "spool"
    )


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        engine_dir=settings.resolved_engine_dir,
        beagle_jar=settings.beagle_jar,
        java=settings.java,
        heap_mb=settings.engine_heap_mb,
        threads=settings.engine_threads,
        stale_seconds=settings.engine_stale_seconds,
        max_restarts=settings.engine_max_restarts,
        poll_interval=settings.engine_poll_interval_seconds,
        keep_finished_seconds=settings.engine_keep_failed_hours * 3600,
    )


def default_connectors(
    settings: Settings, clients: ClientPool | None = None
) -> dict[str, Connector]:
    """The connectors of every service type this build speaks, sharing `clients` (or a
    pool opening a client per call, when not given)."""
    clients = clients or ClientPool(keep_alive=False)
    return {
        "local": LocalConnector(engine_config(settings)),
        "michigan": MichiganConnector(clients=clients),
        "ga4gh_wes": WesConnector(clients=clients),
        "dnastack": DnastackConnector(clients=clients),
    }


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    connectors: Mapping[str, Connector] | None = None,
    storage: Storage | None = None,
) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret_key = load_secret_key(settings)
    encryption_keys = (
        settings.encryption_keys.get_secret_value() if settings.encryption_keys else None
    )
    clients = ClientPool()
    return Runtime(
        settings=settings,
        clients=clients,
        db=Database(settings.resolved_database_url),
        storage=storage or open_storage(settings),
        clock=clock or SystemClock(),
        secret_key=secret_key,
        vault=Vault.from_settings(encryption_keys, secret_key),
        connectors=dict(
            default_connectors(settings, clients) if connectors is None else connectors
        ),
    )

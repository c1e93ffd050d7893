"""The runtime: the long-lived objects one process shares (database, storage, clock...).

Built once from `Settings` by `build_runtime`; passed to the app and the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from imputehub.accounts.vault import Vault
from imputehub.clock import Clock, SystemClock
from imputehub.config import Settings, load_secret_key
from imputehub.connectors.base import Connector
from imputehub.connectors.dnastack import DnastackConnector
from imputehub.connectors.local import EngineConfig, LocalConnector
from imputehub.connectors.michigan import MichiganConnector
from imputehub.connectors.wes import WesConnector
from imputehub.db.session import Database
from imputehub.files.storage import LocalStorage, Storage
from imputehub.notify.stream_slots import StreamSlots


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

    def wake_workers(self) -> None:
        self.work_ready.set()

    async def close(self) -> None:
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


def default_connectors(settings: Settings) -> dict[str, Connector]:
    """The connectors of every service type this build speaks."""
    return {
        "local": LocalConnector(engine_config(settings)),
        "michigan": MichiganConnector(),
        "ga4gh_wes": WesConnector(),
        "dnastack": DnastackConnector(),
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
    return Runtime(
        settings=settings,
        db=Database(settings.resolved_database_url),
        storage=storage or open_storage(settings),
        clock=clock or SystemClock(),
        secret_key=secret_key,
        vault=Vault.from_settings(encryption_keys, secret_key),
        connectors=dict(default_connectors(settings) if connectors is None else connectors),
    )

"""The connector Protocol: how the worker talks to one kind of imputation service.

A connector translates between the hub and a service's API. It holds no state of its own
(besides the process's pooled HTTP clients, `clients.py`) and never touches the database;
everything it needs comes in as arguments. It raises `TransientServiceError` for what is
worth retrying and `PermanentServiceError` (or a subclass) for what is not; no third-party
exception leaves it.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, kw_only=True)
class ServiceInfo:
    """What a connector may know of a registered service."""

    id: str
    slug: str
    api_type: str
    base_url: str
    api_config: dict[str, Any] = field(default_factory=dict)


class HealthStatus(enum.StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class Health:
    status: HealthStatus
    response_time_ms: float | None = None
    message: str | None = None
    # Jobs waiting in the service's own queue (all users), where the service tells.
    queue_size: int | None = None


@dataclass(frozen=True, kw_only=True)
class PanelInfo:
    panel_id: str
    display_name: str
    build: str
    populations: tuple[str, ...] = ()
    sample_count: int | None = None
    variant_count: int | None = None
    description: str = ""
    # What a job on this panel may choose, when the service lists it (empty: not listed,
    # left to the service). Michigan lists these once per app, the same for all its panels.
    phasing: tuple[str, ...] = ()
    r2_filters: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class InputFile:
    """One input file; `open` streams its bytes in bounded chunks."""

    name: str
    size: int
    sha256: str
    open: Callable[[], AsyncIterator[bytes]]
    # A short-lived signed link to the file at the hub's own download endpoint, for
    # services that fetch inputs themselves; None when the hub has no IMPUTEHUB_PUBLIC_URL.
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """What the user asked the service to do."""

    job_id: str
    name: str
    panel_id: str  # the service's own panel id
    build: str
    phasing: str
    population: str | None
    mode: str  # imputation | qc_only
    r2_filter: float | None
    inputs: Sequence[InputFile]
    # Made by the hub for this job before it was submitted, kept encrypted: a password the
    # service encrypts results with (Michigan's zip password), so the hub can decrypt them.
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class ExternalRef:
    external_id: str
    # Seconds until the first poll is worth it, if the connector knows better than the
    # hub's default (the local engine: seconds; a remote queue: the default).
    poll_after: float | None = None
    secret: str | None = field(default=None, repr=False)  # the job's JobSpec.secret


class ExternalState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, kw_only=True)
class ExternalStatus:
    state: ExternalState
    progress: float | None = None  # the service's own 0-100, if it says
    message: str | None = None  # for failed jobs: the service's own error message
    queue_position: int | None = None
    logs: tuple[str, ...] = ()
    poll_after: float | None = None  # seconds until the next poll is worth it, if known
    results_deleted_at: datetime | None = None  # when the service deletes the results, if said


@dataclass(frozen=True, kw_only=True)
class ResultFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class CredentialCheck:
    """What a service said about a credential (connectors that can ask implement
    `verify_credential(service, credential) -> CredentialCheck`)."""

    valid: bool
    message: str
    expires_at: datetime | None = None


class KeptDownload(Protocol):
    """One service file's download, kept in the hub's storage while it arrives.

    For services that limit downloads (Michigan): a fetch retried on any worker, after any
    crash, reuses the bytes that arrived instead of downloading them again. The bytes are
    numbered segments, each stored whole or not at all; the connector's notes about the
    download (a small JSON object of its own making) are stored next to them.
    """

    async def notes(self) -> dict[str, Any] | None:
        """The notes saved last for this file, or None."""
        ...

    async def save_notes(self, notes: Mapping[str, Any]) -> None: ...

    async def write_segment(self, index: int, chunks: AsyncIterator[bytes]) -> int:
        """Store segment `index` (replacing an earlier one); returns its size."""
        ...

    def read_segment(self, index: int) -> AsyncIterator[bytes]:
        """The segment's bytes; NotFound if it is not stored."""
        ...

    async def drop_segments(self) -> None:
        """Delete the stored segments; the notes stay."""
        ...

    async def forget(self) -> None:
        """Delete the segments and the notes."""
        ...


class ResultSink(Protocol):
    """Where fetched result files go; the worker's implementation stores them."""

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile: ...

    # For services that limit downloads (Michigan): a fetch retried after a failure, on
    # any worker, skips the service's files an earlier attempt stored completely, and
    # resumes those it had begun to download.
    async def fetched(self, source: str) -> list[ResultFile] | None:
        """What was stored from the service's file `source` for this job, if all of it was."""
        ...

    async def mark_fetched(self, source: str, files: Sequence[ResultFile]) -> None:
        """Remember that `source` is completely stored as `files`."""
        ...

    def kept_download(self, source: str) -> KeptDownload:
        """Where the download of the service's file `source` is kept while it arrives."""
        ...


class Connector(Protocol):
    async def check_health(self, service: ServiceInfo) -> Health: ...

    async def list_panels(
        self, service: ServiceInfo, credential: str | None
    ) -> list[PanelInfo]: ...

    async def find(
        self,
        service: ServiceInfo,
        idempotency_key: str,
        credential: str | None,
        *,
        submitted_after: datetime | None = None,
    ) -> ExternalRef | None:
        """The job submitted earlier under this key, if the service has it.

        `submitted_after`: when the hub recorded its intent to submit; a service that lists
        jobs newest first with their submission times may stop looking at older ones.
        """
        ...

    async def submit(
        self,
        service: ServiceInfo,
        job: JobSpec,
        credential: str | None,
        idempotency_key: str,
    ) -> ExternalRef: ...

    async def poll(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> ExternalStatus: ...

    async def cancel(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> None: ...

    async def fetch_results(
        self,
        service: ServiceInfo,
        ref: ExternalRef,
        credential: str | None,
        sink: ResultSink,
    ) -> list[ResultFile]: ...


API_TYPES = ("michigan", "ga4gh_wes", "dnastack", "local")

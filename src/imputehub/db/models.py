"""SQLAlchemy models: the persistent shape of users, services, panels, files and jobs.

Times are stored as timezone-aware UTC. Ids are UUID strings so SQLite and PostgreSQL
behave the same.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false
from sqlalchemy import true as sa_true
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_login_at: Mapped[datetime | None]
    # Bumped on password change: access tokens issued before it stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # A self-made account on its way in (accounts/signup.py): "unverified" until the e-mail
    # link is followed, then "pending" until an admin approves (approval mode); None: a
    # full account. Such accounts cannot sign in.
    signup_status: Mapped[str | None] = mapped_column(String(16), index=True)
    email_verified_at: Mapped[datetime | None]
    # The owner asked for the account to go (accounts/deletion.py): it is closed at once and
    # removed, with its files and results, once no job of it is still active at a service.
    deletion_requested_at: Mapped[datetime | None] = mapped_column(index=True)


class AccountLink(Base):
    """A single-use link mailed to an account's address: verify the address, or set a new
    password. Only the SHA-256 of the link's random token is stored."""

    __tablename__ = "account_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # verify_email | reset_password
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class HubSetting(Base):
    """A setting admins change from the console (sign-up mode, maintenance…), audited.
    Secrets never live here: they stay in the environment or the vault."""

    __tablename__ = "hub_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class ApiToken(Base):
    """A personal API token; only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class BrowserSession(Base):
    """A signed-in browser (web pages). Only the cookie's SHA-256 is stored.

    Ends at logout, after `idle` without a request, at `expires_at` (an absolute limit), or
    when the user's token_version moves on (password change or reset, deactivation).
    """

    __tablename__ = "browser_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Service(Base):
    __tablename__ = "services"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    api_type: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    supported_builds: Mapped[list[Any]] = mapped_column(JSON, default=list)
    max_upload_size: Mapped[int | None] = mapped_column(BigInteger)
    api_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Fernet token of the platform credential; never leaves the server in clear.
    credential_encrypted: Mapped[str | None] = mapped_column(Text)
    credential_verified: Mapped[bool | None] = mapped_column(Boolean)  # None: not checked
    credential_verified_at: Mapped[datetime | None]
    credential_expires_at: Mapped[datetime | None]
    job_time_limit_seconds: Mapped[float | None] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Paused by an admin: new jobs for it wait in the hub (not submitted) until resumed.
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    health_status: Mapped[str] = mapped_column(String(16), default="unknown")
    health_message: Mapped[str | None] = mapped_column(Text)
    response_time_ms: Mapped[float | None] = mapped_column(Float)
    # Jobs waiting in the service's own queue at the last health check (None: not told).
    queue_size: Mapped[int | None] = mapped_column(Integer)
    last_checked_at: Mapped[datetime | None]
    # Lease columns: health checks are claimed by workers like jobs are.
    health_next_run_at: Mapped[datetime | None]
    health_lease_owner: Mapped[str | None] = mapped_column(String(100))
    health_lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class UserServiceCredential(Base):
    """A user's own credential for one service; it wins over the platform credential."""

    __tablename__ = "user_service_credentials"
    __table_args__ = (UniqueConstraint("user_id", "service_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    credential_encrypted: Mapped[str] = mapped_column(Text)  # Fernet token (vault)
    last_four: Mapped[str] = mapped_column(String(4))
    verified: Mapped[bool | None] = mapped_column(Boolean)  # None: not checked yet
    verified_at: Mapped[datetime | None]
    verification_message: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    # What the service lists for this credential against the hub's panels (Michigan servers
    # list only what an account may use): {"missing": [panel ids], "extra": [...]}; None:
    # not known yet.
    panel_access: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ServiceHealthCheck(Base):
    __tablename__ = "service_health_checks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    checked_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    response_time_ms: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str | None] = mapped_column(Text)
    queue_size: Mapped[int | None] = mapped_column(Integer)


class ReferencePanel(Base):
    __tablename__ = "reference_panels"
    __table_args__ = (UniqueConstraint("service_id", "panel_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # The service's own id for the panel, e.g. apps@1000g-phase-3-v5@2.0.0
    panel_id: Mapped[str] = mapped_column(String(300))
    display_name: Mapped[str] = mapped_column(String(300))
    build: Mapped[str] = mapped_column(String(8))
    populations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sample_count: Mapped[int | None] = mapped_column(Integer)
    variant_count: Mapped[int | None] = mapped_column(BigInteger)
    # Chromosome names as the panel writes them (known for local panels; [] = unknown).
    contigs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StoredFile(Base):
    """An uploaded input or a fetched result, owned by one user."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="input")  # input | result
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(1024), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "next_run_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Both None exactly for the parent of a federated job: its children run at the services.
    service_id: Mapped[str | None] = mapped_column(ForeignKey("services.id"), index=True)
    reference_panel_id: Mapped[str | None] = mapped_column(ForeignKey("reference_panels.id"))
    retry_of: Mapped[str | None] = mapped_column(String(36))
    # A child of a federated job names its parent (federation/parents.py); deleting the
    # parent deletes its children.
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    # A child's target in its parent's request (0 = the first); a retry keeps it.
    target_index: Mapped[int | None] = mapped_column(Integer)
    # Whether the job's events reach its owner's notifications (in-app, e-mail, webhooks).
    # A federated job's children are quiet unless the owner asked to hear of each.
    notify: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    build: Mapped[str] = mapped_column(String(8))
    phasing: Mapped[str] = mapped_column(String(16))
    population: Mapped[str | None] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    r2_filter: Mapped[float | None] = mapped_column(Float)
    external_job_id: Mapped[str | None] = mapped_column(String(300))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The service's own step messages, replaced on every poll.
    service_logs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # The last 100 errors met while working on the job (transient ones too).
    error_log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    # Worker bookkeeping (lease model, see worker/leases.py).
    next_step: Mapped[str | None] = mapped_column(String(16))
    next_run_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set, and committed, before the service is asked to run the job: a worker that
    # finds it set looks the job up at the service before submitting again.
    submit_started_at: Mapped[datetime | None]
    # When retention first removed one of the job's input or result files.
    files_expired_at: Mapped[datetime | None]
    # A secret made for this job before it was submitted (vault-encrypted), for services
    # that encrypt results with a password the client chooses (Michigan's zip password).
    service_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # Which credential submitted the job: "user" (the owner's own) or "platform".
    credential_source: Mapped[str | None] = mapped_column(String(16))
    # The job's place in the service's own queue while it waits there (1 = next).
    service_queue_position: Mapped[int | None] = mapped_column(Integer)
    # When the service deletes the job's results, once it has said (Michigan's `deletedOn`).
    service_deletes_results_at: Mapped[datetime | None]

    inputs: Mapped[list[JobInput]] = relationship(
        order_by="JobInput.position", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def at_service_id(self) -> str:
        """The service the job runs at. Only a federated job's parent has none, and code
        that talks to a service never sees a parent (the worker's steps, slots)."""
        if self.service_id is None:
            raise ValueError(f"job {self.id} is a federated job's parent; it runs at no service")
        return self.service_id


class JobInput(Base):
    __tablename__ = "job_inputs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    file: Mapped[StoredFile] = relationship(lazy="selectin")


class JobStatusUpdate(Base):
    __tablename__ = "job_status_updates"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class WorkerHeartbeat(Base):
    """One row per live worker process, refreshed every loop, for /health and ops."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class Upload(Base):
    """A resumable (chunked) upload: parts arrive over time, then become one StoredFile."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    # Where the assembled file will live, and the storage backend's handle for the parts.
    storage_key: Mapped[str] = mapped_column(String(1024), unique=True)
    storage_handle: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(BigInteger)
    part_count: Mapped[int] = mapped_column(Integer)
    # The whole file's SHA-256 as the client declared it at init (optional).
    sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # see domain/uploads.UploadStatus
    # While completing: the request assembling the file holds it until then (a lease).
    completing_until: Mapped[datetime | None]
    file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class UploadPart(Base):
    """One part of an Upload, recorded only after its bytes are stored."""

    __tablename__ = "upload_parts"

    upload_id: Mapped[str] = mapped_column(
        ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column("part_index", Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]


# ---- notifications, live events, audit ------------------------------------------------------


class Event(Base):
    """Something a user may want to hear of, written in the transaction that caused it.

    The outbox (the worker fans each event out to in-app notifications and deliveries, then
    stamps `fanned_out_at`) and the log the live streams read (`id` is the SSE event id; on
    PostgreSQL, writers of events take one advisory lock, so ids become visible in order).
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Events that must happen once per fact (a credential expiring) carry a unique key.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    fanned_out_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime]


class Notification(Base):
    """An in-app notification: one per event the user wants to see in the app."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_read_at", "user_id", "read_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str | None] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    read_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Delivery(Base):
    """One event to one outside channel (e-mail, a webhook), claimed by workers by lease."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "channel", "target"),
        Index("ix_deliveries_status_next_run_at", "status", "next_run_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    target: Mapped[str] = mapped_column(String(254))  # the address, or the webhook's id
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_run_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Webhook(Base):
    """A user's HTTPS endpoint for signed event deliveries; the signing secret is vaulted."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    event_kinds: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: every kind
    secret_encrypted: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_delivery_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class NotificationPreference(Base):
    """A user's choice for one event kind on one channel; absent rows take the defaults."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)


class AuditEntry(Base):
    """A security-relevant action: who, what, on what, from where, and how it ended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[str | None] = mapped_column(String(36), index=True)
    actor: Mapped[str] = mapped_column(String(64), default="")  # the username at the time
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(100), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    request_id: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MetricCounter(Base):
    """A monotonic counter shared by every process, so /metrics is right behind a balancer."""

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    labels: Mapped[str] = mapped_column(String(500), primary_key=True)  # 'k="v",…', sorted
    value: Mapped[float] = mapped_column(Float, default=0.0)


class AuthThrottle(Base):
    """Recent failed password attempts of one source: a client address, an account name, or
    the two together (accounts/throttle.py). In the database so every API process sees them.
    """

    __tablename__ = "auth_throttles"

    # A digest of "kind:value": the names typed at a login form can be mistyped passwords.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None]
    last_failure_at: Mapped[datetime] = mapped_column(index=True)

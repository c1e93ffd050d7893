"""Settings: the only place that reads the environment.

Everything else receives a `Settings` instance (or the values it needs) as an argument,
so tests build isolated apps and workers with tiny intervals.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name
MIN_SECRET_KEY_LENGTH = 32
SQLITE_FILE = "sqlite+aiosqlite:///"


class Settings(BaseSettings):
    """Runtime configuration, from `IMPUTEHUB_*` environment variables or a `.env` file."""

    model_config = SettingsConfigDict(
        env_prefix="IMPUTEHUB_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path("var")
    database_url: str | None = None
    secret_key: SecretStr | None = None
    # Comma-separated Fernet keys for service credentials; the first encrypts, all decrypt
    # (rotation). Unset: one key derived from the secret key.
    encryption_keys: SecretStr | None = None

    admin_username: str | None = None
    admin_password: SecretStr | None = None
    admin_email: str | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    # Lifetime of the signed links services download job inputs by (files/links.py).
    input_link_seconds: int = Field(default=24 * 3600, gt=0)

    access_token_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    # Failed password attempts (logins, password changes) a client address or an account
    # name may make before each further one waits, 1 s doubling up to the maximum
    # (accounts/throttle.py); no account is ever locked.
    login_max_failures: int = Field(default=5, gt=0)
    login_backoff_max_seconds: int = Field(default=15 * 60, gt=0)
    # Browser sessions (web pages): signed out after this long without a request, and in
    # any case this long after signing in.
    session_idle_minutes: int = Field(default=60, gt=0)
    session_max_hours: int = Field(default=12, gt=0)
    # Live (unexpired) personal API tokens one user may hold.
    max_api_tokens_per_user: int = Field(default=20, gt=0)
    # Comma-separated addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For
    # is believed; from any other peer the header is ignored (monitoring/client_address.py).
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network (CIDR): {part!r}") from None
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        parts = (p.strip() for p in self.trusted_proxies.split(","))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts if p)

    max_active_jobs_per_user: int = Field(default=4, gt=0)
    # Targets (service and panel) one federated job may have; each is a job of its own.
    max_targets_per_job: int = Field(default=5, ge=2, le=20)
    # Seconds between two looks of a federated job at its children (the worker's follow step).
    parent_follow_seconds: float = Field(default=5.0, gt=0)
    max_upload_size: int = Field(default=50 * 1024**3, gt=0)
    # The largest request body a route that reads its body whole (JSON, forms) accepts;
    # files go through the upload routes, which stream (api/body_limit.py).
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    upload_chunk_size: int = Field(default=1024 * 1024, gt=0)
    # Resumable uploads: an unfinished upload expires this long after its last part.
    upload_expiry_seconds: float = Field(default=24 * 3600, gt=0)
    # Bytes each user may keep (stored files + unfinished uploads); None: no quota.
    storage_quota_bytes: int | None = Field(default=None, gt=0)
    # Declared bytes of one user's unfinished resumable uploads, quota or not: parts land in
    # storage before the file is complete, so without it one account could fill the disk
    # with uploads it never finishes (until they expire). 500 GiB is ten files of the
    # largest size at once (IMPUTEHUB_MAX_UPLOAD_SIZE, 50 GiB): room for a whole cohort
    # split by chromosome, not for an unbounded pile.
    max_pending_upload_bytes: int = Field(default=500 * 1024**3, gt=0)
    # Bytes of results one job may store (a service's api_config `max_result_bytes` wins).
    max_result_bytes_per_job: int = Field(default=200 * 1024**3, gt=0)

    # Unset: files on local disk under the data dir. Else e.g.
    # s3://KEY:SECRET@bucket/prefix?endpoint_url=http://127.0.0.1:8333&region=us-east-1
    # (without KEY:SECRET the standard AWS variables and files supply the credentials).
    storage_url: SecretStr | None = None
    # Lifetime of presigned download URLs (S3), and whether downloads redirect to them.
    storage_presign_seconds: int = Field(default=300, gt=0)
    storage_redirect_downloads: bool = True
    # Files older than this many days are deleted by the worker (None: keep forever).
    retention_days_results: float | None = Field(default=None, gt=0)
    retention_days_inputs: float | None = Field(default=None, gt=0)
    retention_interval_seconds: float = Field(default=600.0, gt=0)

    worker_poll_interval: float = Field(default=2.0, gt=0)
    worker_lease_seconds: float = Field(default=120.0, gt=0)
    # Polls wait on the network, not the CPU: one worker holds hundreds in flight (following
    # 10,000 running jobs at a 30 s interval is 333 polls a second).
    worker_batch_size: int = Field(default=100, gt=0)
    worker_concurrency: int = Field(default=200, gt=0)
    # Submits at once per worker (each may stream gigabytes), within the concurrency.
    worker_submit_concurrency: int = Field(default=15, gt=0)
    poll_interval_seconds: float = Field(default=30.0, gt=0)
    retry_base_seconds: float = Field(default=10.0, gt=0)
    retry_max_seconds: float = Field(default=1800.0, gt=0)
    max_transient_attempts: int = Field(default=50, gt=0)
    job_time_limit_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    health_check_interval_seconds: float = Field(default=300.0, gt=0)
    health_check_timeout_seconds: float = Field(default=10.0, gt=0)

    # Notifications. E-mail goes out only when SMTP_HOST is set. SMTP_SECURITY: "starttls"
    # (upgrade a plain connection, port 587), "tls" (implicit TLS, port 465) or "none".
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "imputehub@localhost"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Webhooks to private, loopback or link-local addresses (and plain http) are refused
    # unless this is set: a user must not make the hub call into its own network.
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Deliveries (e-mail, webhooks) are retried with backoff up to this many attempts.
    notify_max_attempts: int = Field(default=8, gt=0)
    notify_retry_base_seconds: float = Field(default=30.0, gt=0)
    notify_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Live event streams (SSE) look for new events this often, and send a keep-alive
    # comment after this long without one (proxies close idle connections).
    events_poll_seconds: float = Field(default=1.0, gt=0)
    events_keepalive_seconds: float = Field(default=15.0, gt=0)
    # An open stream asks again this often whether its caller may still see it (token,
    # account, job), however busy it is; no ends it with a `stream.closed` message.
    events_recheck_seconds: float = Field(default=5.0, gt=0)
    # Live event streams one user may hold open at once, counted in each API process's
    # memory (so per process); one more is answered 429.
    max_streams_per_user: int = Field(default=10, gt=0)

    # The built-in local engine (service type "local"). Its run directories and reference
    # panels live under engine_dir (default: <data_dir>/engine); every worker that runs local
    # jobs must see it (the same machine, or a shared filesystem).
    engine_dir: Path | None = None
    beagle_jar: Path = Path("/usr/share/beagle/beagle.jar")
    java: str = "java"
    engine_heap_mb: int = Field(default=2048, ge=256)
    engine_threads: int = Field(default=2, gt=0)
    # A run whose heartbeat is older than this is orphaned (its process died) and restarted.
    engine_stale_seconds: float = Field(default=60.0, gt=0)
    engine_max_restarts: int = Field(default=3, ge=0)
    # A failed local run's directory (runner.log, work files, staged inputs) is kept this
    # long for an operator to look into, then removed.
    engine_keep_failed_hours: float = Field(default=7 * 24, ge=0)
    # Seconds between two polls of a local run (remote services use poll_interval_seconds).
    engine_poll_interval_seconds: float = Field(default=3.0, gt=0)
    # `serve` registers the local service and simulates the demo panel on first start.
    engine_bootstrap: bool = True

    # Monitoring. GET /metrics answers a bearer METRICS_TOKEN (for Prometheus) or an admin's
    # token; without METRICS_TOKEN only admins may scrape.
    metrics_token: SecretStr | None = None
    # Requests per client per window, "N/second|minute|hour"; "0" disables. Login attempts
    # count per client address across all processes (in the database); other API calls per
    # bearer token (else address) in each process's memory.
    rate_limit_login: str = "10/minute"
    rate_limit_api: str = "600/minute"

    log_level: str = "INFO"
    # "text" reads well in a terminal; "json" (one object per line) suits log collectors.
    log_format: Literal["text", "json"] = "text"

    # Command-line client: which hub to talk to, and where `imputehub login` keeps its token.
    url: str = "http://127.0.0.1:8000"
    client_config_dir: Path = Path.home() / ".config" / "imputehub"
    # A bearer token for the command-line client (e.g. in CI); wins over the stored login.
    token: SecretStr | None = None

    @field_validator("data_dir", "engine_dir", "client_config_dir", "beagle_jar")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Made absolute once, here: the engine runs Beagle in a run's own working directory,
        # and a worker, a runner and the API may each start elsewhere, so no path the hub
        # derives from settings may depend on the directory a process happened to start in.
        return absolute_path(value) if value is not None else None

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        # Services download inputs by links under it: it must be an absolute address.
        if value is not None and not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError(
                "IMPUTEHUB_PUBLIC_URL must be an http(s) URL, e.g. https://hub.example.org"
            )
        return value.rstrip("/") if value else value

    @field_validator("rate_limit_login", "rate_limit_api")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        # The same grammar monitoring/ratelimit.parse reads; refused here, at start-up.
        if not re.fullmatch(r"\s*\d+\s*(/\s*(second|minute|hour)s?\s*)?", value, re.IGNORECASE):
            raise ValueError("a rate limit is 'N/second', 'N/minute' or 'N/hour' (0 disables)")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        return normalise_database_url(value) if value else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from a mapping (default: the process environment)."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {
            key[len("IMPUTEHUB_") :].lower(): value
            for key, value in source.items()
            if key.startswith("IMPUTEHUB_")
        }
        values.update(overrides)
        if environ is None:
            return cls(**values)
        return cls(_env_file=None, **values)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'imputehub.db'}"

    @property
    def resolved_engine_dir(self) -> Path:
        return self.engine_dir if self.engine_dir is not None else self.data_dir / "engine"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def absolute_path(path: Path) -> Path:
    """`path` with `~` expanded, made absolute against the current directory, normalised.

    Not `resolve()`: a data dir reached through a symlink stays named as the user named it.
    """
    return Path(os.path.abspath(path.expanduser()))


def normalise_database_url(url: str) -> str:
    """Use the async drivers whatever form the user wrote the URL in.

    A relative SQLite file (`sqlite:///var/hub.db`) is made absolute against the current
    directory, like every other path in the settings.
    """
    if url.startswith("sqlite:"):
        url = "sqlite+aiosqlite:" + url[len("sqlite:") :]
    if url.startswith(SQLITE_FILE):
        path, _, query = url[len(SQLITE_FILE) :].partition("?")
        if path and not path.startswith("/") and path != ":memory:":
            url = SQLITE_FILE + str(absolute_path(Path(path))) + (f"?{query}" if query else "")
        return url
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def load_secret_key(settings: Settings) -> str:
    """The configured secret key, or one generated once into the data dir (mode 0600).

    There is no default secret: a fresh install gets its own random key.
    """
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value()
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"IMPUTEHUB_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters"
            )
        return key
    path = settings.data_dir / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_name(f".{SECRET_KEY_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    try:
        # link() fails if another process won the race; then its key is the key.
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        tmp.unlink()
    return key

"""The one error hierarchy of imputehub.

Domain and application code raise these; `api/problems.py` alone maps them to HTTP
(RFC 9457 problem+json), the CLI prints their message. Each class has a stable `code`
that clients may switch on. Messages are for people and never contain secrets.
"""

from __future__ import annotations

from typing import Any


class ImputehubError(Exception):
    """Root of every error imputehub raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(ImputehubError):
    """The request is well-formed but its values break a rule (HTTP 422)."""

    code = "invalid_input"


class NotFound(ImputehubError):
    """The thing does not exist, or the caller may not know it exists (HTTP 404)."""

    code = "not_found"


class AuthenticationRequired(ImputehubError):
    """No valid credentials were presented (HTTP 401)."""

    code = "authentication_required"


class TooManyAttempts(ImputehubError):
    """Too many failed password attempts from this source; retry after `retry_after`
    seconds (HTTP 429). Never says whether the account exists (accounts/throttle.py)."""

    code = "too_many_attempts"


class Gone(ImputehubError):
    """The thing existed but is no longer usable, e.g. an expired upload (HTTP 410)."""

    code = "gone"


class PermissionDenied(ImputehubError):
    """Authenticated, but not allowed to do this (HTTP 403)."""

    code = "permission_denied"


class Conflict(ImputehubError):
    """The request clashes with the current state (HTTP 409)."""

    code = "conflict"


class InvalidTransition(Conflict):
    """A job cannot move from its current state to the requested one."""

    code = "invalid_transition"


class LimitExceeded(ImputehubError):
    """A configured limit (active jobs, quota, size) would be exceeded (HTTP 429/413)."""

    code = "limit_exceeded"


class PayloadTooLarge(LimitExceeded):
    """An upload is larger than allowed (HTTP 413)."""

    code = "payload_too_large"


class HubInMaintenance(ImputehubError):
    """The hub's admins put it in maintenance and chose to refuse new jobs meanwhile."""

    code = "hub_in_maintenance"


class StorageUnavailable(ImputehubError):
    """File storage (e.g. the S3 server) cannot be reached or refused us; retry later (HTTP 503)."""

    code = "storage_unavailable"


class ServiceError(ImputehubError):
    """An imputation service misbehaved or refused; raised by connectors."""

    code = "service_error"


class TransientServiceError(ServiceError):
    """Worth retrying later: network errors, 5xx, maintenance, per-user job limits."""

    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class ServiceBusy(TransientServiceError):
    """The service works but takes no new job now (the account's job limit, maintenance).

    Waiting for it is no failure of the job: the worker does not count it as an attempt
    (the job's time limit still bounds the wait). `limit`: the jobs per account the service
    said it allows, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        limit: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.limit = limit


class ServiceInMaintenance(ServiceBusy):
    """The service is in maintenance: worth another try once it is back."""


class PermanentServiceError(ServiceError):
    """Retrying will not help: the service rejected the job or the credential."""

    code = "service_rejected"


class CredentialRejected(PermanentServiceError):
    """The service refused the credential we hold for it."""

    code = "credential_rejected"


class JobLost(PermanentServiceError):
    """The service no longer knows the job we submitted."""

    code = "job_lost"

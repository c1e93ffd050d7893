"""Credentials for services: a user's own (set, status, delete, verify) and the platform's.

A user's own credential for a service wins over the platform credential (the worker picks).
Secrets are vault-encrypted on the way in and leave this module only towards a connector:
statuses carry whether one is set, its last four characters (long ones only), the latest
verification and the expiry - never the secret, in no return value, log or error message.

Verification reads in one transaction, asks the connector OUTSIDE any transaction (a slow
service must not hold database locks) and records the answer in a second one, like health
checks do. Storing or verifying a user's own credential for a service that lists panels by
account (`credentials.PANELS_BY_ACCOUNT`) also asks which panels it sees, the same way, and
records how they differ from the hub's (`credentials.PanelAccess`; ids only): the status
says it in one sentence and job creation refuses a panel the credential does not see.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import require_admin
from imputehub.accounts.vault import Vault
from imputehub.connectors.base import CredentialCheck, ServiceInfo
from imputehub.db.models import Service, User, UserServiceCredential
from imputehub.domain.errors import (
    Conflict,
    CredentialRejected,
    ImputehubError,
    InvalidInput,
    TransientServiceError,
)
from imputehub.monitoring import audit
from imputehub.registry import credentials, lookup, rules, services
from imputehub.registry.local_engine import LOCAL_API_TYPE
from imputehub.runtime import Runtime

log = logging.getLogger("imputehub.registry.credentials")

Scope = Literal["user", "platform"]

MAX_CREDENTIAL_BYTES = 4096
EXPIRY_WARNING = timedelta(days=7)
# Below this length the last four characters would give away too much of the secret.
MIN_LENGTH_FOR_LAST_FOUR = 12
MAX_MESSAGE_LENGTH = 1000
CANNOT_VERIFY = "this service type cannot verify credentials"
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, kw_only=True)
class CredentialStatus:
    """What may be shown about a stored credential."""

    service_id: str
    scope: Scope
    set: bool
    last_four: str | None = None
    verified: bool | None = None  # None: never checked, or the service cannot tell
    verified_at: datetime | None = None
    expires_at: datetime | None = None
    expires_soon: bool = False  # expires within EXPIRY_WARNING (or has expired)
    message: str | None = None
    updated_at: datetime | None = None
    # The user's own credential against the hub's panels (None: not known).
    panels_missing: tuple[str, ...] | None = None
    panels_extra: tuple[str, ...] | None = None
    panels_message: str | None = None


def check_user_credential(credential: str) -> str:
    """Kept exactly as given (it is someone else's secret), but bounded and printable."""
    try:
        size = len(credential.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(
            "credential must be valid text (it holds an unpaired surrogate)", field="credential"
        ) from None
    if not credential.strip():
        raise InvalidInput("credential must not be empty", field="credential")
    if size > MAX_CREDENTIAL_BYTES:
        raise InvalidInput(
            f"credential must be at most {MAX_CREDENTIAL_BYTES} bytes", field="credential"
        )
    # Tokens travel in HTTP headers, where line breaks and NUL cannot go.
    if _CONTROL_RE.search(credential):
        raise InvalidInput(
            "credential must not contain control characters (line breaks, tabs, NUL)",
            field="credential",
        )
    return rules.check_credential(credential)


def last_four(credential: str) -> str:
    return credential[-4:] if len(credential) >= MIN_LENGTH_FOR_LAST_FOUR else ""


def expires_soon(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now + EXPIRY_WARNING


def _redact(message: str, secret: str) -> str:
    """A service's message, bounded, with the secret cut out should the service echo it."""
    return message.replace(secret, "[redacted]")[:MAX_MESSAGE_LENGTH]


def _user_status(
    service: Service, row: UserServiceCredential | None, *, now: datetime
) -> CredentialStatus:
    if row is None:
        return CredentialStatus(service_id=service.id, scope="user", set=False)
    access = credentials.recorded_panel_access(row)
    return CredentialStatus(
        service_id=service.id,
        scope="user",
        set=True,
        last_four=row.last_four or None,
        verified=row.verified,
        verified_at=row.verified_at,
        expires_at=row.expires_at,
        expires_soon=expires_soon(row.expires_at, now),
        message=row.verification_message,
        updated_at=row.updated_at,
        panels_missing=access.missing if access is not None else None,
        panels_extra=access.extra if access is not None else None,
        panels_message=credentials.describe_panel_access(service.name, access),
    )


def _platform_status(
    service: Service, *, now: datetime, message: str | None = None
) -> CredentialStatus:
    if service.credential_encrypted is None:
        return CredentialStatus(service_id=service.id, scope="platform", set=False)
    return CredentialStatus(
        service_id=service.id,
        scope="platform",
        set=True,
        verified=service.credential_verified,
        verified_at=service.credential_verified_at,
        expires_at=service.credential_expires_at,
        expires_soon=expires_soon(service.credential_expires_at, now),
        message=message,  # the services table keeps no verification message
        updated_at=service.updated_at,
    )


async def _own_row(
    session: AsyncSession, user_id: str, service_id: str
) -> UserServiceCredential | None:
    return await credentials.own_row(session, user_id=user_id, service_id=service_id)


def _reset_platform_verification(service: Service) -> None:
    service.credential_verified = None
    service.credential_verified_at = None
    service.credential_expires_at = None


async def set_credential(
    session: AsyncSession,
    vault: Vault,
    actor: User,
    ref: str,
    credential: str,
    *,
    scope: Scope = "user",
    now: datetime,
) -> CredentialStatus:
    """Store (or replace) the actor's own credential, or the platform's (admins)."""
    if scope == "platform":
        require_admin(actor)
    cleaned = check_user_credential(credential)
    if scope == "platform":
        service = await services.update_service(
            session, vault, actor, ref, {"credential": cleaned}, now=now
        )
        _reset_platform_verification(service)
        return _platform_status(service, now=now)
    service = await services.get_service(session, actor, ref)
    row = await _own_row(session, actor.id, service.id)
    if row is None:
        row = UserServiceCredential(user_id=actor.id, service_id=service.id, created_at=now)
        session.add(row)
    # A new secret makes the last verification meaningless.
    row.credential_encrypted = vault.encrypt(cleaned)
    row.last_four = last_four(cleaned)
    row.verified = None
    row.verified_at = None
    row.verification_message = None
    row.expires_at = None
    credentials.record_panel_access(row, None)
    row.updated_at = now
    try:
        await session.flush()
    except IntegrityError as exc:
        # Two requests of the same user raced to create the row: the other one won.
        raise Conflict(
            "the credential was changed by another request at the same time; try again"
        ) from exc
    log.info(
        "user credential set",
        extra={"action": "user_credential_set", "service_id": service.id, "actor_id": actor.id},
    )
    return _user_status(service, row, now=now)


async def store(
    runtime: Runtime,
    actor: User,
    ref: str,
    credential: str,
    *,
    scope: Scope = "user",
    origin: audit.Origin,
    now: datetime,
) -> CredentialStatus:
    """Set (or replace) a credential and audit it (the API and the settings page).

    Stored and committed first; then, for the user's own, the service is asked with no
    transaction open which panels it sees."""
    async with runtime.db.session() as session:
        found = await set_credential(
            session, runtime.vault, actor, ref, credential, scope=scope, now=now
        )
        await _audit(session, actor, "credential_set", found.service_id, scope, origin, now)
    if scope == "user":
        found = await check_panels(runtime, actor, found.service_id)
    return found


async def remove(
    session: AsyncSession,
    vault: Vault,
    actor: User,
    ref: str,
    *,
    scope: Scope = "user",
    origin: audit.Origin,
    now: datetime,
) -> None:
    """Forget a credential and audit it (the API and the settings page)."""
    await delete_credential(session, vault, actor, ref, scope=scope, now=now)
    await _audit(session, actor, "credential_deleted", ref, scope, origin, now)


async def _audit(
    session: AsyncSession,
    actor: User,
    action: str,
    service: str,
    scope: Scope,
    origin: audit.Origin,
    now: datetime,
) -> None:
    # Which credential changed, never its value (not even the last characters).
    await audit.record(
        session,
        action=action,
        actor=actor,
        now=now,
        target_type="service",
        target_id=service,
        origin=origin,
        details={"scope": scope},
    )


@dataclass(frozen=True, kw_only=True)
class OwnCredential:
    """A service that takes the user's own credential, and what may be shown of it."""

    service_id: str
    service_name: str
    status: CredentialStatus


async def own_credentials(
    session: AsyncSession, actor: User, *, now: datetime
) -> list[OwnCredential]:
    """Every active service that takes a user's own credential (all but the built-in local
    engine, which runs on the hub itself), with the actor's credential status for each."""
    rows = await session.scalars(
        select(Service)
        .where(Service.is_active.is_(True), Service.api_type != LOCAL_API_TYPE)
        .order_by(Service.name, Service.slug)
    )
    found = []
    for service in rows:
        row = await _own_row(session, actor.id, service.id)
        found.append(
            OwnCredential(
                service_id=service.id,
                service_name=service.name,
                status=_user_status(service, row, now=now),
            )
        )
    return found


async def get_status(
    session: AsyncSession, actor: User, ref: str, *, scope: Scope = "user", now: datetime
) -> CredentialStatus:
    service = await services.get_service(session, actor, ref)
    if scope == "platform":
        require_admin(actor)
        return _platform_status(service, now=now)
    return _user_status(service, await _own_row(session, actor.id, service.id), now=now)


async def delete_credential(
    session: AsyncSession,
    vault: Vault,
    actor: User,
    ref: str,
    *,
    scope: Scope = "user",
    now: datetime,
) -> None:
    """Forget the credential; deleting one that is not set is not an error."""
    if scope == "platform":
        require_admin(actor)
        service = await services.update_service(
            session, vault, actor, ref, {"credential": None}, now=now
        )
        _reset_platform_verification(service)
        return
    service = await services.get_service(session, actor, ref)
    result = await session.execute(
        delete(UserServiceCredential).where(
            UserServiceCredential.user_id == actor.id,
            UserServiceCredential.service_id == service.id,
        )
    )
    if getattr(result, "rowcount", 0):
        log.info(
            "user credential deleted",
            extra={
                "action": "user_credential_deleted",
                "service_id": service.id,
                "actor_id": actor.id,
            },
        )


async def user_credential(
    session: AsyncSession, vault: Vault, user_id: str, service_id: str
) -> str | None:
    """The user's own credential for the service, decrypted (for the worker); None if unset."""
    row = await _own_row(session, user_id, service_id)
    return vault.decrypt(row.credential_encrypted) if row is not None else None


async def record_rejection(
    session: AsyncSession, user_id: str, service_id: str, message: str, *, now: datetime
) -> None:
    """The service refused the user's own credential while running a job: mark it."""
    row = await _own_row(session, user_id, service_id)
    if row is not None:
        row.verified = False
        row.verified_at = now
        row.verification_message = message[:MAX_MESSAGE_LENGTH]


async def verify(
    runtime: Runtime, actor: User, ref: str, *, scope: Scope = "user"
) -> CredentialStatus:
    """Ask the service whether the credential is good; record and return the answer.

    Raises Conflict when no credential is set, TransientServiceError when the service cannot
    answer now (nothing is recorded then), another ServiceError for other refusals.
    """
    async with runtime.db.session() as session:
        service = await services.get_service(session, actor, ref)
        if scope == "platform":
            require_admin(actor)
            sealed = service.credential_encrypted
        else:
            row = await _own_row(session, actor.id, service.id)
            sealed = row.credential_encrypted if row is not None else None
        if sealed is None:
            who = (
                "this service has no platform credential"
                if scope == "platform"
                else ("you have no credential for this service")
            )
            raise Conflict(f"{who}; set one first", code="credential_not_set")
        secret = runtime.vault.decrypt(sealed)
        info = lookup.service_info(service)
    check = await _ask_connector(runtime, info, secret)
    seen: list[str] | None = None
    if scope == "user" and (check is None or check.valid):
        seen = await _panels_seen(runtime, info, secret)
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        service = await services.get_service(session, actor, info.id)
        if scope == "platform":
            service.credential_verified = check.valid if check is not None else None
            service.credential_verified_at = now
            service.credential_expires_at = check.expires_at if check is not None else None
            status = _platform_status(
                service, now=now, message=check.message if check is not None else CANNOT_VERIFY
            )
        else:
            row = await _own_row(session, actor.id, service.id)
            if row is None or runtime.vault.decrypt(row.credential_encrypted) != secret:
                # Deleted or replaced while the service was asked: the answer is stale.
                raise Conflict(
                    "the credential changed while it was being verified; verify again",
                    code="credential_changed",
                )
            row.verified = check.valid if check is not None else None
            row.verified_at = now
            row.verification_message = check.message if check is not None else CANNOT_VERIFY
            row.expires_at = check.expires_at if check is not None else None
            await _record_seen(session, row, seen)
            status = _user_status(service, row, now=now)
    log.info(
        "credential verified",
        extra={
            "action": "credential_verified",
            "scope": scope,
            "service_id": info.id,
            "actor_id": actor.id,
            "verified": status.verified,
        },
    )
    return status


async def check_panels(runtime: Runtime, actor: User, ref: str) -> CredentialStatus:
    """Ask the service which panels the actor's own credential sees, record how they differ
    from the hub's, and return the status. Best effort: when the service cannot tell now
    (or lists the same panels to everyone) the status is returned as it was."""
    async with runtime.db.session() as session:
        service = await services.get_service(session, actor, ref)
        row = await _own_row(session, actor.id, service.id)
        if row is None or service.api_type not in credentials.PANELS_BY_ACCOUNT:
            return _user_status(service, row, now=runtime.clock.now())
        secret = runtime.vault.decrypt(row.credential_encrypted)
        info = lookup.service_info(service)
    seen = await _panels_seen(runtime, info, secret)
    async with runtime.db.session() as session:
        service = await services.get_service(session, actor, info.id)
        row = await _own_row(session, actor.id, service.id)
        # Replaced or deleted meanwhile: the answer is about another secret.
        if row is not None and runtime.vault.decrypt(row.credential_encrypted) == secret:
            await _record_seen(session, row, seen)
        return _user_status(service, row, now=runtime.clock.now())


async def _record_seen(
    session: AsyncSession, row: UserServiceCredential, seen: list[str] | None
) -> None:
    if seen is None:
        return  # not asked, or no answer: what was recorded for this secret stays
    hub = await credentials.active_panel_ids(session, row.service_id)
    credentials.record_panel_access(row, credentials.compare_panels(hub, seen))


async def _panels_seen(runtime: Runtime, info: ServiceInfo, secret: str) -> list[str] | None:
    """The panel ids the service lists to this credential; None when it cannot tell now."""
    if info.api_type not in credentials.PANELS_BY_ACCOUNT:
        return None
    connector = runtime.connectors.get(info.api_type)
    if connector is None:
        return None
    try:
        async with asyncio.timeout(runtime.settings.health_check_timeout_seconds):
            panels = await connector.list_panels(info, secret)
    except Exception as exc:
        # Any failure (timeout, refusal, network): nothing is known. Its text may carry
        # anything the service echoed; only its kind is logged.
        log.warning(
            "could not list the panels a user credential sees",
            extra={
                "action": "user_credential_panels_unknown",
                "service_id": info.id,
                "error": type(exc).__name__,
            },
        )
        return None
    return [panel.panel_id for panel in panels]


async def _ask_connector(
    runtime: Runtime, info: ServiceInfo, secret: str
) -> CredentialCheck | None:
    """The service's verdict; None when this kind of service cannot give one."""
    connector = runtime.connectors.get(info.api_type)
    verify_credential = getattr(connector, "verify_credential", None)
    if verify_credential is None:
        return None
    timeout = runtime.settings.health_check_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            check = await verify_credential(info, secret)
    except TimeoutError:
        raise TransientServiceError(
            f"the service did not answer within {timeout:g} seconds; try again later"
        ) from None
    except CredentialRejected as exc:
        return CredentialCheck(valid=False, message=_redact(exc.message, secret))
    except ImputehubError as exc:
        exc.message = _redact(exc.message, secret)
        exc.args = (exc.message,)
        raise
    except Exception as exc:
        # A foreign exception's text may carry anything (headers, the token): keep its kind.
        log.warning(
            "connector failed while verifying a credential",
            extra={
                "action": "credential_verify_connector_error",
                "service_id": info.id,
                "error": type(exc).__name__,
            },
        )
        raise TransientServiceError(
            f"verifying the credential failed unexpectedly ({type(exc).__name__})"
        ) from None
    if not isinstance(check, CredentialCheck):
        raise TransientServiceError("the connector gave no verdict on the credential")
    return CredentialCheck(
        valid=bool(check.valid),
        message=_redact(check.message, secret),
        expires_at=check.expires_at,
    )

"""Webhooks: registration rules, the SSRF guard, request signing and the signed POST.

A user registers an HTTPS endpoint; the hub makes a signing secret, shows it once and keeps
it vaulted. Each delivery is a JSON POST:

    {"id": <delivery id>, "type": <event kind>, "created_at": <ISO time>, "data": <payload>}

with headers `Content-Type: application/json`, `X-Imputehub-Event: <kind>`,
`X-Imputehub-Delivery: <delivery id>` (stable across retries: receivers drop duplicates by
it) and `X-Imputehub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
Receivers recompute the HMAC over the raw body and refuse timestamps older than a few
minutes (`verify_signature` shows how).

Server-side request forgery: URLs must be https, carry no credentials, and every address
their host resolves to must be public. This is checked when the webhook is registered and
again at each delivery (DNS can change), and the request goes to the very address checked
(TLS still verifies the certificate against the host name); redirects are never followed.
`webhook_allow_private` (an admin setting, for closed networks and tests) lifts the address
rule and permits http.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.vault import Vault
from imputehub.db.models import User, Webhook
from imputehub.db.session import lock_row
from imputehub.domain.errors import InvalidInput, LimitExceeded, NotFound
from imputehub.domain.notifications import EventKind
from imputehub.monitoring import audit
from imputehub.outbound.addresses import AddressRefused, pinned, resolve

MAX_WEBHOOKS_PER_USER = 10
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 200
SIGNATURE_TOLERANCE_SECONDS = 300


@dataclass(frozen=True, kw_only=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str  # shown to the user once, in the response to the registration


# --- the URL rules (the address rule is outbound/addresses.py) -------------------------


def check_url(url: str, *, allow_private: bool) -> httpx.URL:
    """The parsed URL if its form is acceptable; else InvalidInput saying why."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"the URL is longer than {MAX_URL_LENGTH} characters", field="url")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidInput("the URL cannot be parsed", field="url") from exc
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes:
        raise InvalidInput("webhook URLs must start with https://", field="url")
    if not parsed.host:
        raise InvalidInput("the URL names no host", field="url")
    if parsed.userinfo:
        raise InvalidInput(
            "the URL must not carry a user name or password; authenticate requests by "
            "their signature",
            field="url",
        )
    if parsed.fragment:
        raise InvalidInput("the URL must not have a #fragment", field="url")
    return parsed


# --- registration -----------------------------------------------------------------------


async def create_webhook(
    session: AsyncSession,
    vault: Vault,
    *,
    user_id: str,
    url: str,
    description: str,
    event_kinds: list[EventKind],
    allow_private: bool,
    now: datetime,
) -> CreatedWebhook:
    parsed = check_url(url, allow_private=allow_private)
    try:
        await resolve(parsed, allow_private=allow_private)
    except AddressRefused as exc:
        raise InvalidInput(f"{exc}; the hub calls public addresses only", field="url") from exc
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(
            f"the description is longer than {MAX_DESCRIPTION_LENGTH} characters",
            field="description",
        )
    # Lock the user's row first, so parallel registrations count one after the other and
    # stop at the limit.
    await lock_row(session, User, user_id)
    count = await session.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.user_id == user_id)
    )
    if (count or 0) >= MAX_WEBHOOKS_PER_USER:
        raise LimitExceeded(
            f"you have {MAX_WEBHOOKS_PER_USER} webhooks, the most one user may have; "
            "delete one first",
            limit=MAX_WEBHOOKS_PER_USER,
        )
    secret = "whsec_" + secrets.token_urlsafe(32)
    webhook = Webhook(
        user_id=user_id,
        url=url,
        description=description,
        event_kinds=sorted({kind.value for kind in event_kinds}),
        secret_encrypted=vault.encrypt(secret),
        is_active=True,
        created_at=now,
    )
    session.add(webhook)
    await session.flush()
    return CreatedWebhook(webhook=webhook, secret=secret)


async def register(
    session: AsyncSession,
    vault: Vault,
    user: User,
    *,
    url: str,
    description: str,
    event_kinds: list[EventKind],
    allow_private: bool,
    origin: audit.Origin,
    now: datetime,
) -> CreatedWebhook:
    """A user registers a webhook (the API and the settings page): created and audited."""
    created = await create_webhook(
        session,
        vault,
        user_id=user.id,
        url=url,
        description=description,
        event_kinds=event_kinds,
        allow_private=allow_private,
        now=now,
    )
    await audit.record(
        session,
        action="webhook_created",
        actor=user,
        now=now,
        target_type="webhook",
        target_id=created.webhook.id,
        origin=origin,
        # The host only: a webhook URL's path or query is often a secret of its own.
        details={"host": urlsplit(created.webhook.url).hostname or ""},
    )
    return created


async def unregister(
    session: AsyncSession, user: User, webhook_id: str, *, origin: audit.Origin, now: datetime
) -> None:
    """A user deletes one of their webhooks: removed and audited (another's: NotFound)."""
    await delete_webhook(session, user_id=user.id, webhook_id=webhook_id)
    await audit.record(
        session,
        action="webhook_deleted",
        actor=user,
        now=now,
        target_type="webhook",
        target_id=webhook_id,
        origin=origin,
    )


async def list_webhooks(session: AsyncSession, *, user_id: str) -> list[Webhook]:
    rows = await session.scalars(
        select(Webhook).where(Webhook.user_id == user_id).order_by(Webhook.created_at, Webhook.id)
    )
    return list(rows)


async def get_webhook(session: AsyncSession, *, user_id: str, webhook_id: str) -> Webhook:
    """The caller's webhook; another user's is as unknown as a missing one."""
    webhook = await session.get(Webhook, webhook_id)
    if webhook is None or webhook.user_id != user_id:
        raise NotFound("no such webhook")
    return webhook


async def delete_webhook(session: AsyncSession, *, user_id: str, webhook_id: str) -> None:
    """Remove the webhook; its pending deliveries then fail as 'webhook deleted'."""
    webhook = await get_webhook(session, user_id=user_id, webhook_id=webhook_id)
    await session.delete(webhook)


# --- signing and sending ----------------------------------------------------------------


def body_of(*, delivery_id: int, kind: str, created_at: datetime, payload: Any) -> bytes:
    document = {
        "id": str(delivery_id),
        "type": kind,
        "created_at": created_at.isoformat(),
        "data": payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Imputehub-Signature value: `t=<unix seconds>,v1=<hex HMAC-SHA256>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: int,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: the MAC matches the raw body and the timestamp is recent."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected.encode(), parts.get("v1", "").encode())


@dataclass(frozen=True, kw_only=True)
class PostResult:
    status_code: int | None  # None: no answer (refused, timeout, network error)
    error: str | None  # None: a 2xx answer


async def post(
    client: httpx.AsyncClient,
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    allow_private: bool,
    timeout_seconds: float,
) -> PostResult:
    """POST `body` to the endpoint at an address checked just now; never raises."""
    try:
        parsed = check_url(url, allow_private=allow_private)
        address = await resolve(parsed, allow_private=allow_private)
    except InvalidInput as exc:
        return PostResult(status_code=None, error=f"refused: {exc.message}")
    except AddressRefused as exc:
        return PostResult(
            status_code=None, error=f"refused: {exc}; the hub calls public addresses only"
        )
    target, host_header, pins = pinned(parsed, address)
    request_headers = {**host_header, **headers}
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout_seconds).as_dict(), **pins}
    request = client.build_request(
        "POST", target, content=body, headers=request_headers, extensions=extensions
    )
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
        # The answer's body is not ours to read: close at once, whatever its size.
        await response.aclose()
    except httpx.TimeoutException:
        return PostResult(status_code=None, error=f"no answer within {timeout_seconds:g} s")
    except httpx.HTTPError as exc:
        return PostResult(status_code=None, error=f"request failed: {type(exc).__name__}")
    if 200 <= response.status_code < 300:
        return PostResult(status_code=response.status_code, error=None)
    return PostResult(
        status_code=response.status_code,
        error=f"the receiver answered HTTP {response.status_code}",
    )

"""Delivering e-mails and webhook calls: claimed by lease, sent, retried with backoff.

A worker chore (`deliver_due`). Due pending deliveries are leased in one statement, as jobs
are (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer); the claim counts the
attempt. Each is sent under its own timeout, a few at a time, and the outcome is written
only while the lease is still ours and the row still pending:
- accepted (2xx, or the SMTP server took the mail): `sent`, for good;
- a webhook answering 410 Gone: `failed`, and the webhook is deactivated;
- anything else (other 4xx/5xx, timeouts, network errors, an address now refused): retried
  after `notify_retry_base_seconds * 2**(attempts-1)` (at most `notify_retry_max_seconds`)
  until `notify_max_attempts`, then `failed` with the last error.
A worker that dies mid-send leaves its lease to expire; another worker then sends again
(at least once). Receivers drop such a repeat by `X-Imputehub-Delivery`; once a delivery is
recorded `sent` nobody sends it again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Delivery, Event, Webhook
from imputehub.domain import jobs
from imputehub.domain.notifications import Channel, EventKind
from imputehub.notify import email, webhooks
from imputehub.outbound.tls import ssl_context
from imputehub.runtime import Runtime

logger = logging.getLogger("imputehub.notify")

BATCH = 20
CONCURRENCY = 5
PENDING, SENT, FAILED = "pending", "sent", "failed"
# SMTP replies meaning the mailbox does not exist or is not accepted here.
PERMANENT_SMTP_CODES = frozenset({550, 551, 553})


def retry_delay(attempts: int, *, base: float, maximum: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: doubling, capped.

    The jobs' backoff without its jitter (rand = 1: the whole exponential): deliveries are
    few per worker, and a fixed schedule is what receivers can read in their logs.
    """
    return jobs.retry_delay(attempts, base=base, cap=maximum, rand=lambda: 1.0)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    error: str | None  # None: delivered
    status_code: int | None = None
    retry: bool = True  # on failure: try again later (False: give up now)
    deactivate_webhook: bool = False


@dataclass(frozen=True, kw_only=True)
class DeliveryClaim:
    delivery_id: int
    owner: str
    attempts: int


async def claim_due_deliveries(
    session: AsyncSession, *, owner: str, now: datetime, lease_seconds: float, limit: int
) -> list[DeliveryClaim]:
    """Lease up to `limit` due pending deliveries to `owner`, counting the attempt."""
    due = (
        select(Delivery.id)
        .where(
            Delivery.status == PENDING,
            Delivery.next_run_at <= now,
            or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at < now),
        )
        .order_by(Delivery.next_run_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due))
        .values(
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Delivery.attempts + 1,
        )
        .returning(Delivery.id, Delivery.attempts)
        .execution_options(synchronize_session=False)
    )
    return [
        DeliveryClaim(delivery_id=delivery_id, owner=owner, attempts=attempts)
        for delivery_id, attempts in result.all()
    ]


class Sender:
    """Sends one delivery over its channel. Tests may pass their own mailer or HTTP client."""

    def __init__(
        self, runtime: Runtime, *, mailer: email.Mailer, client: httpx.AsyncClient
    ) -> None:
        self.runtime = runtime
        self.mailer = mailer
        self.client = client

    async def send(self, claim: DeliveryClaim) -> Outcome:
        async with self.runtime.db.session() as session:
            delivery = await session.get(Delivery, claim.delivery_id)
            event = await session.get(Event, delivery.event_id) if delivery else None
            hook = None
            if delivery is not None and delivery.channel == Channel.WEBHOOK.value:
                hook = await session.get(Webhook, delivery.target)
        if delivery is None or event is None:
            return Outcome(error="the event is gone", retry=False)
        if delivery.channel == Channel.EMAIL.value:
            return await self._email(delivery, event)
        if delivery.channel == Channel.WEBHOOK.value:
            return await self._webhook(delivery, event, hook)
        return Outcome(error=f"unknown channel {delivery.channel!r}", retry=False)

    async def _email(self, delivery: Delivery, event: Event) -> Outcome:
        try:
            kind = EventKind(event.kind)
        except ValueError:
            return Outcome(error=f"unknown event kind {event.kind!r}", retry=False)
        s = self.runtime.settings
        message = email.compose(
            kind, event.payload, to=delivery.target, sender=s.smtp_from, public_url=s.public_url
        )
        result = await self.mailer.send(message)
        if result.error is None:
            return Outcome(error=None)
        # A refused mailbox stays refused; other refusals (a wrong login, a full queue) may
        # be fixed by an admin or pass, so they are retried.
        permanent = result.status_code in PERMANENT_SMTP_CODES
        return Outcome(error=result.error, status_code=result.status_code, retry=not permanent)

    async def _webhook(self, delivery: Delivery, event: Event, hook: Webhook | None) -> Outcome:
        if hook is None or hook.user_id != delivery.user_id:
            return Outcome(error="the webhook was deleted", retry=False)
        if not hook.is_active:
            return Outcome(error="the webhook is deactivated", retry=False)
        secret = self.runtime.vault.decrypt(hook.secret_encrypted)
        body = webhooks.body_of(
            delivery_id=delivery.id,
            kind=event.kind,
            created_at=event.created_at,
            payload=event.payload,
        )
        timestamp = int(self.runtime.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "imputehub-webhooks",
            "X-Imputehub-Event": event.kind,
            "X-Imputehub-Delivery": str(delivery.id),
            "X-Imputehub-Signature": webhooks.signature(secret, body, timestamp),
        }
        s = self.runtime.settings
        result = await webhooks.post(
            self.client,
            url=hook.url,
            body=body,
            headers=headers,
            allow_private=s.webhook_allow_private,
            timeout_seconds=s.webhook_timeout_seconds,
        )
        if result.error is None:
            return Outcome(error=None, status_code=result.status_code)
        if result.status_code == 410:
            return Outcome(
                error="the receiver answered 410 Gone: the webhook is deactivated",
                status_code=410,
                retry=False,
                deactivate_webhook=True,
            )
        return Outcome(error=result.error, status_code=result.status_code)


async def record(
    session: AsyncSession, runtime: Runtime, claim: DeliveryClaim, outcome: Outcome
) -> bool:
    """Write the outcome if the lease is still ours and the delivery pending; False if not."""
    now = runtime.clock.now()
    s = runtime.settings
    values: dict[str, object] = {
        "lease_owner": None,
        "lease_expires_at": None,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
    }
    if outcome.error is None:
        values |= {"status": SENT, "sent_at": now, "next_run_at": None}
    elif not outcome.retry or claim.attempts >= s.notify_max_attempts:
        values |= {"status": FAILED, "next_run_at": None}
    else:
        delay = retry_delay(
            claim.attempts, base=s.notify_retry_base_seconds, maximum=s.notify_retry_max_seconds
        )
        values["next_run_at"] = now + timedelta(seconds=delay)
    written = await session.execute(
        update(Delivery)
        .where(
            Delivery.id == claim.delivery_id,
            Delivery.lease_owner == claim.owner,
            Delivery.status == PENDING,
        )
        .values(**values)
        .returning(Delivery.channel, Delivery.target)
        .execution_options(synchronize_session=False)
    )
    row = written.first()
    if row is None:
        return False
    channel, target = row
    if channel == Channel.WEBHOOK.value:
        hook_values: dict[str, object] = {
            "last_delivery_at": now,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
        }
        if outcome.deactivate_webhook:
            hook_values["is_active"] = False
        await session.execute(
            update(Webhook)
            .where(Webhook.id == target)
            .values(**hook_values)
            .execution_options(synchronize_session=False)
        )
    return True


async def deliver_due(
    runtime: Runtime,
    *,
    owner: str,
    mailer: email.Mailer | None = None,
    client: httpx.AsyncClient | None = None,
    limit: int = BATCH,
    concurrency: int = CONCURRENCY,
) -> int:
    """Claim and send up to `limit` due deliveries, `concurrency` at a time; how many were sent.

    Each send is cut off after its channel's timeout (plus a margin for connecting), and no
    send starts once one cutoff has passed since the claim: those are handed back untried.
    So slow receivers hold the worker's housekeeping for about two timeouts at most.
    """
    s = runtime.settings
    cutoff = max(s.webhook_timeout_seconds, s.smtp_timeout_seconds) + 5.0
    async with runtime.db.session() as session:
        claims = await claim_due_deliveries(
            session,
            # Unique per claim, as for jobs: two rounds of one worker never mix up.
            owner=f"{owner}#d{secrets.token_hex(4)}",
            now=runtime.clock.now(),
            # The lease outlives the round, so no second worker starts these meanwhile.
            lease_seconds=max(s.worker_lease_seconds, cutoff * 3),
            limit=limit,
        )
    if not claims:
        return 0
    http = client or httpx.AsyncClient(
        follow_redirects=False, trust_env=False, verify=ssl_context()
    )
    sender = Sender(runtime, mailer=mailer or email.Mailer(s), client=http)
    loop = asyncio.get_running_loop()
    start_by = loop.time() + cutoff
    gate = asyncio.Semaphore(concurrency)
    untried: list[DeliveryClaim] = []

    async def one(claim: DeliveryClaim) -> bool:
        async with gate:
            if loop.time() > start_by:
                untried.append(claim)
                return False
            return await _deliver(runtime, sender, claim, cutoff)

    try:
        done = await asyncio.gather(*(one(claim) for claim in claims))
    finally:
        if client is None:
            await http.aclose()
    if untried:
        async with runtime.db.session() as session:
            await hand_back(session, untried)
    return sum(done)


async def hand_back(session: AsyncSession, claims: list[DeliveryClaim]) -> None:
    """Release claims not tried: due again at once, and the attempt not counted."""
    for claim in claims:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == claim.delivery_id, Delivery.lease_owner == claim.owner)
            .values(lease_owner=None, lease_expires_at=None, attempts=Delivery.attempts - 1)
            .execution_options(synchronize_session=False)
        )


async def _deliver(runtime: Runtime, sender: Sender, claim: DeliveryClaim, cutoff: float) -> bool:
    extra = {"delivery_id": claim.delivery_id, "attempt": claim.attempts}
    try:
        outcome = await asyncio.wait_for(sender.send(claim), cutoff)
    except TimeoutError:
        outcome = Outcome(error=f"not delivered within {cutoff:g} s")
    except Exception as exc:
        # A bug or a database hiccup: count it as a failed attempt, keep the loop going.
        logger.exception(
            "delivery failed unexpectedly", extra={"action": "delivery_error", **extra}
        )
        outcome = Outcome(error=f"internal error: {type(exc).__name__}")
    async with runtime.db.session() as session:
        recorded = await record(session, runtime, claim, outcome)
    if not recorded:
        logger.warning(
            "delivery outcome dropped: lease lost", extra={"action": "delivery_lease_lost", **extra}
        )
        return False
    if outcome.error is None:
        logger.info("delivered", extra={"action": "delivery_sent", **extra})
        return True
    logger.warning(
        "delivery attempt failed",
        extra={"action": "delivery_failed", "error": outcome.error, **extra},
    )
    return False

"""The outbox relay: each new event becomes the user's in-app notification and deliveries.

Run by every worker as a chore. A batch of events not yet fanned out is taken in one
transaction (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so two workers never take the same
event; SQLite has one writer), and in that transaction each gets, by the user's preferences:
an in-app notification; an e-mail delivery to the user's address (when the hub has an SMTP
server and the user an address); a delivery per active webhook that wants the event's kind.
Then the event is stamped `fanned_out_at`. Rows are unique per (event, channel, target), so
a relay can never make the same delivery twice.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Delivery, Event, Notification, NotificationPreference, User, Webhook
from imputehub.domain.notifications import Channel, EventKind, describe, preferences
from imputehub.runtime import Runtime

BATCH = 200


async def fan_out(runtime: Runtime, *, limit: int = BATCH) -> int:
    """Fan out up to `limit` new events; how many were fanned out."""
    now = runtime.clock.now()
    email = bool(runtime.settings.smtp_host)
    async with runtime.db.session() as session:
        query = (
            select(Event)
            .where(Event.fanned_out_at.is_(None))
            .order_by(Event.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # SQLite renders no clause: one writer anyway
        )
        events = list(await session.scalars(query))
        if not events:
            return 0
        await _fan_out(session, events, now=now, email=email)
    return len(events)


async def _fan_out(
    session: AsyncSession, events: list[Event], *, now: datetime, email: bool
) -> None:
    user_ids = {e.user_id for e in events}
    users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(user_ids)))}
    overrides: dict[str, dict[tuple[str, str], bool]] = defaultdict(dict)
    for pref in await session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id.in_(user_ids))
    ):
        overrides[pref.user_id][(pref.kind, pref.channel)] = pref.enabled
    hooks: dict[str, list[Webhook]] = defaultdict(list)
    for hook in await session.scalars(
        select(Webhook)
        .where(Webhook.user_id.in_(user_ids), Webhook.is_active.is_(True))
        .order_by(Webhook.created_at)
    ):
        hooks[hook.user_id].append(hook)
    for event in events:
        event.fanned_out_at = now
        user = users.get(event.user_id)
        try:
            kind = EventKind(event.kind)
        except ValueError:
            continue  # a kind this version does not know: nothing to send
        if user is None or not user.is_active:
            continue
        if event.payload.get("notify") is False:
            continue  # a federated job's child: its parent's events speak for it
        wanted = preferences(overrides[user.id])
        if wanted[(kind, Channel.IN_APP)]:
            title, body = describe(kind, event.payload)
            session.add(
                Notification(
                    user_id=user.id,
                    event_id=event.id,
                    kind=kind.value,
                    job_id=event.job_id,
                    title=title[:300],
                    body=body,
                    created_at=now,
                )
            )
        targets: list[tuple[Channel, str]] = []
        if email and user.email and wanted[(kind, Channel.EMAIL)]:
            targets.append((Channel.EMAIL, user.email))
        if wanted[(kind, Channel.WEBHOOK)]:
            targets.extend(
                (Channel.WEBHOOK, hook.id)
                for hook in hooks[user.id]
                if not hook.event_kinds or kind.value in hook.event_kinds
            )
        for channel, target in targets:
            session.add(
                Delivery(
                    event_id=event.id,
                    user_id=user.id,
                    channel=channel.value,
                    target=target,
                    next_run_at=now,
                    created_at=now,
                )
            )

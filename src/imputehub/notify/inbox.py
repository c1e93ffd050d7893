"""In-app notifications and notification preferences: the use cases behind their API.

A user sees only their own notifications: another user's id is "not found", never
"forbidden", so ids reveal nothing. Unread notifications come first, newest first within
each group. Preferences are a full matrix of event kind x channel: the user's choice where
there is one, else the default (`domain.notifications.default_enabled`); the relay reads
the same rows, so what a user sets here is what the worker sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Notification, NotificationPreference, User
from imputehub.domain.errors import InvalidInput, NotFound
from imputehub.domain.notifications import Channel, EventKind, default_enabled, preferences

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True, kw_only=True)
class NotificationPage:
    items: Sequence[Notification]
    total: int
    unread: int
    limit: int
    offset: int


@dataclass(frozen=True, kw_only=True)
class Preference:
    kind: EventKind
    channel: Channel
    enabled: bool
    default: bool


@dataclass(frozen=True, kw_only=True)
class PreferenceChange:
    kind: str
    channel: str
    enabled: bool


async def unread_count(session: AsyncSession, user: User) -> int:
    found = await session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
    )
    return int(found or 0)


async def list_notifications(
    session: AsyncSession,
    user: User,
    *,
    unread_only: bool = False,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> NotificationPage:
    """One page of the user's notifications: unread first, then newest first."""
    mine = Notification.user_id == user.id
    unread = Notification.read_at.is_(None)
    where = [mine, unread] if unread_only else [mine]
    total = await session.scalar(select(func.count()).select_from(Notification).where(*where))
    unread_count = await session.scalar(
        select(func.count()).select_from(Notification).where(mine, unread)
    )
    rows = await session.scalars(
        select(Notification)
        .where(*where)
        # event_id breaks ties between notifications made in the same relay batch.
        .order_by(
            case((unread, 0), else_=1),
            Notification.created_at.desc(),
            Notification.event_id.desc(),
        )
        .limit(limit)
        .offset(offset)
    )
    return NotificationPage(
        items=list(rows),
        total=int(total or 0),
        unread=int(unread_count or 0),
        limit=limit,
        offset=offset,
    )


async def set_read(
    session: AsyncSession, user: User, notification_id: str, *, read: bool, now: datetime
) -> Notification:
    """Mark one of the user's notifications read (or unread again)."""
    note = await session.scalar(
        select(Notification).where(
            Notification.id == notification_id, Notification.user_id == user.id
        )
    )
    if note is None:
        raise NotFound(f"notification {notification_id} not found")
    if not read:
        note.read_at = None
    elif note.read_at is None:  # keep the first time it was read
        note.read_at = now
    return note


async def mark_all_read(session: AsyncSession, user: User, *, now: datetime) -> int:
    """Mark every unread notification of the user read; how many were unread."""
    result = await session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def get_preferences(session: AsyncSession, user: User) -> list[Preference]:
    """Every (kind, channel) with the user's choice, defaults filled in."""
    rows = await session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user.id)
    )
    chosen = {(row.kind, row.channel): row.enabled for row in rows}
    return [
        Preference(
            kind=kind, channel=channel, enabled=enabled, default=default_enabled(kind, channel)
        )
        for (kind, channel), enabled in preferences(chosen).items()
    ]


async def set_preferences(
    session: AsyncSession, user: User, changes: Iterable[PreferenceChange]
) -> list[Preference]:
    """Apply the user's choices (all or nothing); the whole matrix afterwards.

    A choice equal to the default is stored too: the user chose it, and a later change of
    the default must not override an explicit choice.
    """
    wanted: dict[tuple[str, str], bool] = {}
    for change in changes:
        try:
            kind, channel = EventKind(change.kind), Channel(change.channel)
        except ValueError:
            raise InvalidInput(
                f"unknown event kind or channel: {change.kind!r} on {change.channel!r}; "
                f"kinds: {', '.join(k.value for k in EventKind)}; "
                f"channels: {', '.join(c.value for c in Channel)}",
                field="preferences",
            ) from None
        wanted[(kind.value, channel.value)] = change.enabled
    existing = {
        (row.kind, row.channel): row
        for row in await session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id == user.id)
        )
    }
    for (kind_value, channel_value), enabled in wanted.items():
        row = existing.get((kind_value, channel_value))
        if row is not None:
            row.enabled = enabled
        else:
            session.add(
                NotificationPreference(
                    user_id=user.id, kind=kind_value, channel=channel_value, enabled=enabled
                )
            )
    await session.flush()
    return await get_preferences(session, user)

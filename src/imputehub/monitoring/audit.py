"""The audit log: who did what to which target, with what outcome, from where.

`record` adds an entry in the caller's transaction, so it commits (or rolls back) with the
change it describes; `record_alone` writes in its own transaction, for outcomes whose own
transaction rolls back (a failed login). Details never hold secrets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import AuditEntry, User
from imputehub.db.session import Database
from imputehub.logs import request_id_var


@dataclass(frozen=True, kw_only=True)
class Origin:
    """Where a request came from: its client address and request id."""

    client_ip: str = ""
    request_id: str = ""


def origin_of(client_host: str | None) -> Origin:
    return Origin(client_ip=(client_host or "")[:64], request_id=(request_id_var.get() or "")[:64])


def entry(
    *,
    action: str,
    actor: User | str | None,
    now: datetime,
    target_type: str = "",
    target_id: str = "",
    outcome: str = "success",
    origin: Origin | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    where = origin or origin_of(None)
    return AuditEntry(
        created_at=now,
        actor_id=actor.id if isinstance(actor, User) else None,
        actor=(actor.username if isinstance(actor, User) else (actor or ""))[:64],
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:100],
        outcome=outcome,
        client_ip=where.client_ip,
        request_id=where.request_id,
        details=dict(details or {}),
    )


async def record(session: AsyncSession, **fields: Any) -> None:
    """Add an entry (see `entry`) to the caller's transaction."""
    session.add(entry(**fields))
    await session.flush()


async def record_change(
    session: AsyncSession,
    *,
    action: str,
    actor: User,
    target_type: str,
    target_id: str,
    slug: str,
    fields: Iterable[str],
    origin: Origin | None,
    now: datetime,
) -> None:
    """An admin's change to something registered (a service, a panel): its slug and the
    names of the fields touched, never their values (a credential may be one)."""
    await record(
        session,
        action=action,
        actor=actor,
        now=now,
        target_type=target_type,
        target_id=target_id,
        origin=origin,
        details={"slug": slug, "fields": sorted(fields)},
    )


async def record_alone(db: Database, **fields: Any) -> None:
    """Write an entry in a transaction of its own."""
    async with db.session() as session:
        session.add(entry(**fields))


@dataclass(frozen=True, kw_only=True)
class AuditQuery:
    action: str | None = None
    actor: str | None = None  # a username or a user id
    target: str | None = None  # a target id, or "type:id"
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    offset: int = 0


async def search(session: AsyncSession, query: AuditQuery) -> tuple[list[AuditEntry], int]:
    """Entries matching `query`, newest first, one page; and how many match in all."""
    where: list[ColumnElement[bool]] = []
    if query.action:
        where.append(AuditEntry.action == query.action)
    if query.actor:
        where.append(or_(AuditEntry.actor == query.actor, AuditEntry.actor_id == query.actor))
    if query.target:
        kind, _, ident = query.target.rpartition(":")
        where.append(AuditEntry.target_id == ident)
        if kind:
            where.append(AuditEntry.target_type == kind)
    if query.outcome:
        where.append(AuditEntry.outcome == query.outcome)
    if query.since is not None:
        where.append(AuditEntry.created_at >= query.since)
    if query.until is not None:
        where.append(AuditEntry.created_at < query.until)
    total = await session.scalar(select(func.count()).select_from(AuditEntry).where(*where))
    rows = await session.scalars(
        select(AuditEntry)
        .where(*where)
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .limit(query.limit)
        .offset(query.offset)
    )
    return list(rows), int(total or 0)

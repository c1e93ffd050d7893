"""A short-lived, per-process memory of who a bearer token stands for, for reads.

A client polling a job's status would otherwise pay a database round trip per request just
to learn again who it is. An entry lives at most `ttl` seconds, and only safe requests
(GET, HEAD) use it; every other request resolves its token against the database.

Revocation still works: a commit in this process that changes or deletes a user, or
deletes an API token (token deleted, password changed — `token_version`, account
deactivated), forgets every entry at once. A change made by another process (a second
`imputehub api`, `imputehub users ...` on the command line) is seen within `ttl`.

Entries are keyed by the SHA-256 of the bearer, never the bearer itself.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from imputehub.db.models import ApiToken, User

DEFAULT_TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000
_CHANGED = "imputehub_accounts_changed"


class _Generation:
    """Counts commits that changed accounts or deleted tokens, in this process."""

    value = 0


@dataclass(frozen=True, kw_only=True)
class Entry:
    user: User  # detached: merge it into the request's session before use
    expires_at: datetime | None  # the token's own expiry (JWT `exp` or the API token's)
    generation: int
    stored_at: float  # seconds, on the cache's monotonic clock


class CallerCache:
    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._monotonic = monotonic  # seconds; tests pass their own
        self._entries: dict[str, Entry] = {}

    @staticmethod
    def key(bearer: str) -> str:
        return hashlib.sha256(bearer.encode()).hexdigest()

    @staticmethod
    def generation() -> int:
        """Read before resolving a token: an entry stored with it dies at the next change."""
        return _Generation.value

    def get(self, key: str, *, now: datetime) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (
            entry.generation != _Generation.value
            or self._monotonic() - entry.stored_at > self.ttl
            or (entry.expires_at is not None and entry.expires_at <= now)
        ):
            self._entries.pop(key, None)
            return None
        return entry

    def put(self, key: str, user: User, *, expires_at: datetime | None, generation: int) -> None:
        if self.ttl <= 0 or generation != _Generation.value:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare; simpler than an LRU, and only costs a query each
        self._entries[key] = Entry(
            user=user, expires_at=expires_at, generation=generation, stored_at=self._monotonic()
        )


def _mark(session: Session) -> None:
    session.info[_CHANGED] = True


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    if any(isinstance(o, User) for o in (*session.dirty, *session.deleted)) or any(
        isinstance(o, ApiToken) for o in session.deleted
    ):
        _mark(session)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    entity: Any = mapper.class_ if mapper is not None else None
    if entity is User or (entity is ApiToken and state.is_delete):
        _mark(state.session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        _Generation.value += 1


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_CHANGED, None)

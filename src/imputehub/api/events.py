"""Live updates as server-sent events: the caller's events, and one job's.

`GET /api/v1/events` streams the caller's job changes, results and credential notices as
they commit (without `Last-Event-ID`: from now on). `GET /api/v1/jobs/{id}/events` streams
one job's events from its first (or after `Last-Event-ID`), its progress, and ends once the
job is final. Each message: `id: <event id>`, `event: <kind>`, `data: <json>`; progress
messages (`event: job.progress`) carry no id. A comment keeps idle connections open.

Authentication: `Authorization: Bearer <token>`, or — for browsers' EventSource, which
cannot set headers — `?access_token=<token>` on these two routes only (the query is never
logged: access lines and problem answers show the path alone). The resume point is
the `Last-Event-ID` header, else `?last_event_id=`; anything but a non-negative integer is
refused with 400 rather than guessed at (a guess would replay or skip events).

An open stream checks the caller again every `IMPUTEHUB_EVENTS_RECHECK_SECONDS` (the token,
the account, and for a job's stream that the caller may still see the job) and ends with a
`stream.closed` message when they fail. Each user may hold `IMPUTEHUB_MAX_STREAMS_PER_USER`
streams open per API process; one more is answered 429 (`too_many_streams`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Receive, Scope, Send

from imputehub.accounts import api_tokens
from imputehub.api.deps import RuntimeDep
from imputehub.db.models import User
from imputehub.domain.errors import AuthenticationRequired, ImputehubError, NotFound
from imputehub.jobs import queries
from imputehub.notify import live
from imputehub.notify.stream_slots import Lease
from imputehub.runtime import Runtime

router = APIRouter(tags=["events"])

_EVENT_ID = re.compile(r"[0-9]{1,18}")  # fits a signed 64-bit id
RETRY_MILLISECONDS = 3000

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx would otherwise hold messages back
}


class InvalidEventId(ImputehubError):
    """`Last-Event-ID` is not an event id (HTTP 400)."""

    code = "invalid_last_event_id"


LastEventIdHeader = Annotated[str | None, Header(alias="Last-Event-ID")]
LastEventIdQuery = Annotated[
    str | None, Query(description="resume point when the header cannot be sent")
]
AccessTokenQuery = Annotated[
    str | None, Query(description="for EventSource, which cannot send headers")
]


@dataclass(frozen=True)
class StreamCaller:
    """Who opened a stream, and how to ask again while it runs (the token or session may
    end, the account be deactivated)."""

    user: User
    resolve_again: Callable[[AsyncSession], Awaitable[User]]
    # Equal for callers with the same credential: their streams share one recheck. None:
    # each stream checks for itself.
    key: Hashable | None = None


async def bearer_caller(
    request: Request, runtime: RuntimeDep, access_token: AccessTokenQuery = None
) -> StreamCaller:
    """The caller by bearer token: the header, or `?access_token=` for EventSource."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else (access_token or "")
    if not bearer:
        raise AuthenticationRequired(
            "log in first: send 'Authorization: Bearer <token>' (or ?access_token=)"
        )

    async def resolve(session: AsyncSession) -> User:
        return await api_tokens.resolve_bearer(
            session, bearer, secret_key=runtime.secret_key, now=runtime.clock.now()
        )

    async with runtime.db.session() as session:
        user = await resolve(session)
    # A digest, not the token: the key outlives the request in the process's memory.
    return StreamCaller(user, resolve, key=("bearer", hashlib.sha256(bearer.encode()).digest()))


Caller = Annotated[StreamCaller, Depends(bearer_caller)]


def _recheck(caller: StreamCaller, job_id: str | None = None) -> live.Recheck:
    """What the route checked, asked again while streaming: the token, the account, the job.

    Given a session shared with the other rechecks due at the same time; the feed turns a
    database error into a refusal (unchecked is not allowed)."""

    async def refusal(session: AsyncSession) -> live.Refusal | None:
        try:
            user = await caller.resolve_again(session)
            if job_id is not None:
                await queries.get_job(session, user, job_id)
        except (AuthenticationRequired, NotFound) as exc:
            return live.Refusal(code=exc.code, reason=exc.message)
        return None

    return refusal


def _recheck_key(caller: StreamCaller, job_id: str | None) -> Hashable:
    """Streams with equal keys get one answer: same credential, same job."""
    return (caller.key if caller.key is not None else object(), job_id)


def _resume_point(header: str | None, query: str | None) -> int | None:
    raw = header if header not in (None, "") else query
    if raw in (None, ""):
        return None
    assert raw is not None
    if not _EVENT_ID.fullmatch(raw.strip()):
        raise InvalidEventId("Last-Event-ID must be the id of an event: a non-negative integer")
    return int(raw.strip())


class _EventStream(StreamingResponse):
    """Frees its stream's place once the response is over, however it ended."""

    def __init__(self, body: AsyncIterator[bytes], lease: Lease) -> None:
        super().__init__(body, media_type="text/event-stream", headers=HEADERS)
        self.lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.lease.release()


def _sse(runtime: Runtime, user: User, messages: AsyncGenerator[live.Message]) -> StreamingResponse:
    # Taken last, once every check passed: a refused request holds no place.
    lease = runtime.stream_slots.take(user.id, limit=runtime.settings.max_streams_per_user)

    async def body() -> AsyncIterator[bytes]:
        # Closed with the response: the stream leaves the process's event feed at once.
        async with contextlib.aclosing(messages):
            yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
            async for message in messages:
                yield _encode(message)

    return _EventStream(body(), lease)


def _encode(message: live.Message) -> bytes:
    if message is live.KEEP_ALIVE:
        return b": keep-alive\n\n"
    lines = []
    if message.id is not None:
        lines.append(f"id: {message.id}")
    lines.append(f"event: {message.event}")
    # json.dumps escapes newlines, so the data is one line.
    lines.append("data: " + json.dumps(message.data, separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


@router.get("/events", response_class=StreamingResponse)
async def my_events(
    runtime: RuntimeDep,
    caller: Caller,
    last_event_id: LastEventIdQuery = None,
    last_event_id_header: LastEventIdHeader = None,
) -> StreamingResponse:
    """Your events as server-sent events (text/event-stream)."""
    user = caller.user
    after = _resume_point(last_event_id_header, last_event_id)
    if after is None:
        after = await live.latest_event_id(runtime, user.id)
    return _sse(
        runtime,
        user,
        live.user_stream(
            runtime,
            user.id,
            after=after,
            recheck=_recheck(caller),
            key=_recheck_key(caller, None),
        ),
    )


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse)
async def job_events(
    job_id: str,
    runtime: RuntimeDep,
    caller: Caller,
    last_event_id: LastEventIdQuery = None,
    last_event_id_header: LastEventIdHeader = None,
) -> StreamingResponse:
    """One job's events and progress as server-sent events; ends when the job has ended."""
    user = caller.user
    after = _resume_point(last_event_id_header, last_event_id) or 0
    async with runtime.db.session() as session:
        job = await queries.get_job(session, user, job_id)  # 404 unless the caller's
    return _sse(
        runtime,
        user,
        live.job_stream(
            runtime,
            job.user_id,
            job.id,
            after=after,
            recheck=_recheck(caller, job.id),
            key=_recheck_key(caller, job.id),
        ),
    )

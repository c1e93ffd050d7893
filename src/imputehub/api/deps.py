"""Shared route dependencies: runtime, database session, clock and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import api_tokens
from imputehub.accounts.caller_cache import CallerCache
from imputehub.accounts.users import require_admin
from imputehub.db.models import User
from imputehub.domain.errors import AuthenticationRequired
from imputehub.runtime import Runtime


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def`
# in a worker thread, a thread hop per dependency per request.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the route returns, else rolled back."""
    async with runtime.db.session() as session:
        yield session


# scope="function": commit before the response is sent, so a client that reads its own
# write right after the response always sees it.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_now(runtime: RuntimeDep) -> datetime:
    return runtime.clock.now()


Now = Annotated[datetime, Depends(get_now)]
# Where a page of a list starts: bounded, as the databases' OFFSET is a signed 64-bit
# integer (a larger one was a 500).
MAX_OFFSET = 2**53
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]

_bearer = HTTPBearer(auto_error=False, description="access token or personal API token")


async def get_current_user(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    now: Now,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationRequired("log in first: send 'Authorization: Bearer <token>'")
    if request.method in ("GET", "HEAD"):
        # Reads (a client polling its job) may use who the token stood for a moment ago;
        # anything that changes something asks the database.
        return await api_tokens.resolve_bearer_cached(
            session,
            credentials.credentials,
            secret_key=runtime.secret_key,
            now=now,
            cache=_caller_cache(request),
        )
    return await api_tokens.resolve_bearer(
        session, credentials.credentials, secret_key=runtime.secret_key, now=now
    )


def _caller_cache(request: Request) -> CallerCache:
    """The app's cache of callers (one per app, so tests' apps never share one)."""
    state = request.app.state
    cache: CallerCache | None = getattr(state, "caller_cache", None)
    if cache is None:
        cache = state.caller_cache = CallerCache()
    return cache


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    require_admin(user)
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]

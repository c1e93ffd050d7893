"""Shared route dependencies: runtime, database session, clock and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import api_tokens
from imputehub.accounts.users import require_admin
from imputehub.db.models import User
from imputehub.domain.errors import AuthenticationRequired
from imputehub.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
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


def get_now(runtime: RuntimeDep) -> datetime:
    return runtime.clock.now()


Now = Annotated[datetime, Depends(get_now)]
# Where a page of a list starts: bounded, as the databases' OFFSET is a signed 64-bit
# integer (a larger one was a 500).
MAX_OFFSET = 2**53
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]

_bearer = HTTPBearer(auto_error=False, description="access token or personal API token")


async def get_current_user(
    runtime: RuntimeDep,
    session: SessionDep,
    now: Now,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationRequired("log in first: send 'Authorization: Bearer <token>'")
    return await api_tokens.resolve_bearer(
        session, credentials.credentials, secret_key=runtime.secret_key, now=now
    )


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    require_admin(user)
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]

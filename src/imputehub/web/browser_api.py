"""The pages' own JSON door: the REST routes the pages' scripts need, under /app/api/v1,
opened by the session cookie instead of a bearer token.

The same routers as /api/v1 (one set of rules), mounted a second time with the caller
resolved from the session: reads need the cookie, writes also the session's CSRF token in
`X-CSRF-Token` and a same-site Origin. /api/v1 itself never reads the cookie. Not in the
OpenAPI document: scripts use /api/v1 with a token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import browser_sessions
from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api import events, files, jobs, notifications, panels, problems, services, uploads
from imputehub.api.deps import Now, RuntimeDep, get_current_user
from imputehub.api.files import get_detached_user
from imputehub.db.models import User
from imputehub.runtime import Runtime
from imputehub.web import session_auth

PREFIX = "/app/api/v1"


async def _session_user(
    request: Request,
    runtime: RuntimeDep,
    opened: Annotated[OpenSession, Depends(session_auth.resolve_session)],
) -> User:
    """The signed-in user, in the request's own transaction (as get_current_user)."""
    session_auth.check_write(request, runtime, opened)
    return opened.user


async def _detached_user(request: Request, runtime: RuntimeDep, now: Now) -> User:
    """The signed-in user, resolved in a short transaction of its own (routes that stream
    request bodies, such as upload parts)."""
    async with runtime.db.session() as session:
        opened = await session_auth.resolve_session(request, runtime, session, now)
    session_auth.check_write(request, runtime, opened)
    return opened.user


async def _stream_caller(request: Request) -> events.StreamCaller:
    runtime: Runtime = request.app.state.runtime
    cookie = session_auth.read_cookie(runtime, request)
    lifetime = session_auth.lifetime(runtime)

    async def resolve(session: AsyncSession) -> User:
        opened = await browser_sessions.resolve(
            session,
            cookie,
            now=runtime.clock.now(),
            lifetime=lifetime,
            secret_key=runtime.secret_key,
            active=False,  # an open stream is not activity: the idle limit still applies
        )
        return opened.user

    async with runtime.db.session() as session:
        user = await resolve(session)
    return events.StreamCaller(user, resolve)


def browser_api(runtime: Runtime) -> FastAPI:
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    api.state.runtime = runtime
    problems.install(api)
    for module in (files, uploads, jobs, services, panels, notifications, events):
        api.include_router(module.router)
    api.dependency_overrides[get_current_user] = _session_user
    api.dependency_overrides[get_detached_user] = _detached_user
    api.dependency_overrides[events.bearer_caller] = _stream_caller
    return api

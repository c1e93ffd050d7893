"""Who is signed in to the pages: the session cookie, its CSRF token and the page guards.

Pages (and the pages' own JSON door, web/browser_api.py) use these; /api/v1 never reads
the cookie, so a script holding a bearer token and a browser holding a cookie each have one
way in. State-changing requests must carry the session's CSRF token (form field
`csrf_token`, or header `X-CSRF-Token` from scripts) and, when the browser says where they
came from (Origin), come from the hub itself.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from imputehub.accounts import browser_sessions, users
from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.domain.errors import InvalidInput, PermissionDenied
from imputehub.notify import inbox
from imputehub.operations import hub_settings
from imputehub.runtime import Runtime

COOKIE = "imputehub_session"
# Behind https the cookie gets the __Host- prefix: Secure, no Domain, Path=/ (the browser
# enforces it, so a sibling subdomain cannot plant one).
SECURE_COOKIE = "__Host-imputehub_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Forms the pages send are small (settings, job choices); files go through uploads.
MAX_FORM_BYTES = 64 * 1024


def lifetime(runtime: Runtime) -> browser_sessions.Lifetime:
    settings = runtime.settings
    return browser_sessions.lifetime_of(settings.session_idle_minutes, settings.session_max_hours)


def is_secure(runtime: Runtime, request: Request) -> bool:
    """Secure cookies when the hub is reached over https (as its public URL says)."""
    public = runtime.settings.public_url or ""
    return public.startswith("https://") or request.url.scheme == "https"


def cookie_name(runtime: Runtime, request: Request) -> str:
    return SECURE_COOKIE if is_secure(runtime, request) else COOKIE


def read_cookie(runtime: Runtime, request: Request) -> str | None:
    return request.cookies.get(cookie_name(runtime, request))


def set_cookie(runtime: Runtime, request: Request, response: Response, value: str) -> None:
    # No Max-Age: a session cookie, gone when the browser closes; the server's idle and
    # absolute limits end it sooner.
    response.set_cookie(
        cookie_name(runtime, request),
        value,
        httponly=True,
        samesite="lax",  # links into the hub (e-mails) still open signed in; posts do not
        secure=is_secure(runtime, request),
        path="/",
    )


def clear_cookie(runtime: Runtime, request: Request, response: Response) -> None:
    response.delete_cookie(
        cookie_name(runtime, request),
        path="/",
        secure=is_secure(runtime, request),
        httponly=True,
        samesite="lax",
    )


async def resolve_session(
    request: Request, runtime: RuntimeDep, session: SessionDep, now: Now
) -> OpenSession:
    """The signed-in session, or AuthenticationRequired (pages answer it with the sign-in
    page; the browser API with 401)."""
    return await browser_sessions.resolve(
        session,
        read_cookie(runtime, request),
        now=now,
        lifetime=lifetime(runtime),
        secret_key=runtime.secret_key,
    )


async def current_session(
    request: Request, runtime: RuntimeDep, session: SessionDep, now: Now
) -> OpenSession:
    """The signed-in session of a page, with the header's unread count for its badge
    (templating.render reads it); the browser API's calls (upload parts…) skip that query."""
    opened = await resolve_session(request, runtime, session, now)
    request.state.unread_count = await inbox.unread_count(session, opened.user)
    await note_banner(request, session)
    return opened


async def note_banner(request: Request, session: AsyncSession) -> None:
    """The maintenance banner every page shows while the hub is in maintenance (read by
    templating.render); signed-out pages call this themselves."""
    settings = await hub_settings.load(session)
    request.state.hub_settings = settings
    request.state.maintenance = settings if settings.maintenance else None


SignedIn = Annotated[OpenSession, Depends(current_session)]


async def detached_session(request: Request, runtime: RuntimeDep, now: Now) -> OpenSession:
    """The signed-in session, resolved in a short transaction of its own: for routes whose
    use case opens its own transactions (deleting files, asking a service), so that no
    transaction of the request holds the database (SQLite has one writer) while they run."""
    async with runtime.db.session() as session:
        return await current_session(request, runtime, session, now)


DetachedSignedIn = Annotated[OpenSession, Depends(detached_session)]


def check_origin(request: Request, runtime: Runtime) -> None:
    """A state-changing request the browser says came from elsewhere is refused, whatever
    it carries (defence in depth beside the CSRF token and SameSite)."""
    origin = request.headers.get("origin")
    if origin is None:  # older browsers and same-origin GET-style navigations send none
        return
    ours = {request.headers.get("host", "")}
    if runtime.settings.public_url:
        ours.add(urlsplit(runtime.settings.public_url).netloc)
    if origin == "null" or urlsplit(origin).netloc not in ours:
        raise PermissionDenied(
            "this request came from another site and was refused", code="csrf_failed"
        )


def check_write(request: Request, runtime: Runtime, opened: OpenSession) -> None:
    """A state-changing script request (the browser API) carries the session's CSRF token in
    `X-CSRF-Token` and comes from the hub itself."""
    if request.method not in SAFE_METHODS:
        check_origin(request, runtime)
        browser_sessions.check_csrf(opened, request.headers.get(CSRF_HEADER))


async def read_form(request: Request, runtime: Runtime, opened: OpenSession) -> FormData:
    """A page's posted form, bounded in size, with its CSRF token and origin checked."""
    check_origin(request, runtime)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise InvalidInput("send the form as the page does", code="unsupported_media_type")
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > MAX_FORM_BYTES:
        raise InvalidInput("the form is too large", code="form_too_large")
    form = await request.form(max_files=0, max_fields=200, max_part_size=MAX_FORM_BYTES)
    presented = form.get(CSRF_FIELD)
    browser_sessions.check_csrf(opened, presented if isinstance(presented, str) else None)
    return form


async def _admin(opened: SignedIn) -> OpenSession:
    users.require_admin(opened.user)
    return opened


async def _detached_admin(opened: DetachedSignedIn) -> OpenSession:
    users.require_admin(opened.user)
    return opened


# The console's pages: admins only; anyone else gets the 403 page (and nothing is done).
AdminSignedIn = Annotated[OpenSession, Depends(_admin)]
DetachedAdminSignedIn = Annotated[OpenSession, Depends(_detached_admin)]

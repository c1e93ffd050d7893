"""Settings: the user's own credentials for services (set, test now, delete). The secret
goes in and never comes back: not in the page, not in the form after a mistake."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import Response

from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.admin import request_origin
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.api.problems import status_for
from imputehub.domain.errors import ImputehubError, NotFound
from imputehub.registry import user_credentials
from imputehub.runtime import Runtime
from imputehub.web import session_auth
from imputehub.web.settings_common import (
    Detached,
    NoticeQuery,
    field,
    page,
    redirect_done,
    sentence,
)

router = APIRouter(include_in_schema=False)


async def credentials_page(
    request: Request,
    runtime: Runtime,
    opened: OpenSession,
    *,
    notice: str | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        found = await user_credentials.own_credentials(session, opened.user, now=now)
    return page(
        request,
        opened,
        "credentials",
        {"services": found, "errors": errors or {}, "now": now},
        notice=notice,
        status_code=status_code,
    )


@router.get("/settings/credentials")
async def credentials(
    request: Request, runtime: RuntimeDep, opened: Detached, done: NoticeQuery = None
) -> Response:
    return await credentials_page(request, runtime, opened, notice=done)


@router.post("/settings/credentials/{service_id}")
async def set_credential(
    service_id: str, request: Request, runtime: RuntimeDep, opened: Detached
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    secret = field(form, "credential")
    key = f"credential-{service_id}"
    try:
        await user_credentials.store(
            runtime,
            opened.user,
            service_id,
            secret,
            origin=request_origin(request),
            now=runtime.clock.now(),
        )
    except NotFound:
        raise  # no such service (or not one this user may see): the 404 page
    except ImputehubError as exc:
        # Never sent back into the form: the secret is typed again.
        return await credentials_page(
            request,
            runtime,
            opened,
            errors={key: sentence(exc.message)},
            status_code=status_for(exc),
        )
    return redirect_done("/settings/credentials", "credential_set", f"#service-{service_id}")


@router.post("/settings/credentials/{service_id}/verify")
async def verify_credential(
    service_id: str, request: Request, runtime: RuntimeDep, opened: Detached
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    try:
        await user_credentials.verify(runtime, opened.user, service_id)
    except NotFound:
        raise  # no such service (or not one this user may see): the 404 page
    except ImputehubError as exc:
        return await credentials_page(
            request,
            runtime,
            opened,
            errors={f"verify-{service_id}": sentence(exc.message)},
            status_code=status_for(exc),
        )
    return redirect_done("/settings/credentials", "credential_verified", f"#service-{service_id}")


@router.post("/settings/credentials/{service_id}/delete")
async def delete_credential(
    service_id: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    await user_credentials.remove(
        session,
        runtime.vault,
        opened.user,
        service_id,
        origin=request_origin(request),
        now=now,
    )
    return redirect_done("/settings/credentials", "credential_deleted")

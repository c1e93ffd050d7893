"""Services: list with health and load, register and edit each kind, credentials, health
history, check now, sync panels, pause, deactivate.

Every route resolves the admin's session in a short transaction of its own
(DetachedAdminSignedIn) and opens the transactions it needs: several ask a service, and a
rejected form must leave nothing behind, which a transaction that ends with the page
(committed when the route returns) would not promise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.admin import request_origin
from imputehub.api.deps import RuntimeDep
from imputehub.api.problems import status_for
from imputehub.domain.errors import ImputehubError, NotFound
from imputehub.operations import maintenance
from imputehub.registry import health, panel_sync, service_console, services, user_credentials
from imputehub.registry.panel_sync import SyncResult
from imputehub.runtime import Runtime
from imputehub.web import session_auth
from imputehub.web.console import service_forms
from imputehub.web.console.layout import render_console
from imputehub.web.console.service_forms import Kind
from imputehub.web.session_auth import DetachedAdminSignedIn

router = APIRouter(include_in_schema=False)

HISTORY = 50  # health checks shown (chart and table)
# What a redirect after a change says; only these texts, never one taken from the URL.
NOTICES = {
    "created": "The service was registered. The hub checks its health at once.",
    "updated": "The changes were saved.",
    "unchanged": "Nothing was changed.",
    "credential_deleted": "The platform credential was deleted.",
    "paused": "The service is paused: its new jobs wait in the hub.",
    "resumed": "The service is resumed: the jobs held for it go now.",
    "deactivated": "The service was deactivated: users no longer see it; its jobs keep it.",
    "activated": "The service is active again.",
}
NoticeQuery = Annotated[str | None, Query(alias="done", max_length=40)]
KindQuery = Annotated[str | None, Query(max_length=40)]


def _sentence(message: str) -> str:
    text = message.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _done(slug: str, notice: str) -> RedirectResponse:
    return RedirectResponse(f"/console/services/{slug}?done={notice}", status_code=303)


@router.get("/console/services")
async def list_page(
    request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn, done: NoticeQuery = None
) -> Response:
    async with runtime.db.session() as session:
        rows = await service_console.service_rows(session, opened.user)
    return render_console(
        request,
        "console/services/list.html",
        {"rows": rows, "kinds": service_forms.KINDS, "notice": NOTICES.get(done or "")},
        opened=opened,
    )


# --- register and edit ------------------------------------------------------------------


def _form_page(
    request: Request,
    opened: OpenSession,
    kind: Kind,
    *,
    values: Mapping[str, str],
    builds: list[str],
    errors: Mapping[str, str] | None = None,
    service: Any = None,
    status_code: int = 200,
) -> Response:
    errors = errors or {}
    return render_console(
        request,
        "console/services/form.html",
        {
            "kind": kind,
            "values": values,
            "builds": builds,
            "errors": errors,
            "service": service,
            "slot_default": service_forms.default_slot_limit(kind),
            "error": "The form has mistakes: see the messages next to the fields."
            if errors
            else None,
        },
        opened=opened,
        status_code=status_code,
    )


def _error_fields(kind: Kind, exc: ImputehubError) -> dict[str, str]:
    named = str(exc.extra.get("field") or "")
    return {service_forms.COMMON_FIELDS.get(named, "api_config"): _sentence(exc.message)}


@router.get("/console/services/new")
async def new_page(
    request: Request, opened: DetachedAdminSignedIn, kind: KindQuery = None
) -> Response:
    chosen = service_forms.kind_of(kind)
    if chosen is None:
        return render_console(
            request, "console/services/kinds.html", {"kinds": service_forms.KINDS}, opened=opened
        )
    return _form_page(
        request, opened, chosen, values={"base_url": chosen.base_url_default}, builds=[]
    )


@router.post("/console/services/new")
async def register(
    request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn, kind: KindQuery = None
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    chosen = service_forms.kind_of(kind)
    if chosen is None:
        raise NotFound("no such kind of service; choose one on the registration page")
    parsed = service_forms.parse(chosen, form, with_credential=True)
    posted = service_forms.posted_values(chosen, form)
    builds = list(parsed.values["supported_builds"])
    if parsed.errors:
        return _form_page(
            request, opened, chosen, values=posted, builds=builds, errors=parsed.errors,
            status_code=422,
        )  # fmt: skip
    data = services.ServiceInput(
        api_type=chosen.api_type,
        api_config=parsed.config,
        credential=parsed.credential,
        **parsed.values,
    )
    given = {name for name, value in parsed.values.items() if value not in (None, "", [])}
    given |= {"name", "api_type", "base_url", "api_config"}
    if parsed.credential is not None:
        given.add("credential")
    try:
        async with runtime.db.session() as session:
            service = await service_console.register(
                session,
                runtime.vault,
                opened.user,
                data,
                fields=given,
                origin=request_origin(request),
                now=runtime.clock.now(),
            )
            slug = service.slug
    except ImputehubError as exc:
        return _form_page(
            request, opened, chosen, values=posted, builds=builds,
            errors=_error_fields(chosen, exc), status_code=status_for(exc),
        )  # fmt: skip
    runtime.wake_workers()  # its first health check is due now
    return _done(slug, "created")


async def _editable(runtime: Runtime, opened: OpenSession, slug: str) -> tuple[Any, Kind]:
    async with runtime.db.session() as session:
        service = await services.get_service(session, opened.user, slug)
    kind = service_forms.kind_of(service.api_type)
    if kind is None:
        raise NotFound(f"the console cannot edit services of type '{service.api_type}'")
    return service, kind


@router.get("/console/services/{slug}/edit")
async def edit_page(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    service, kind = await _editable(runtime, opened, slug)
    return _form_page(
        request,
        opened,
        kind,
        values=service_forms.form_values(kind, service),
        builds=list(service.supported_builds or []),
        service=service,
    )


@router.post("/console/services/{slug}/edit")
async def edit(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    service, kind = await _editable(runtime, opened, slug)
    parsed = service_forms.parse(kind, form, with_credential=False)
    posted = service_forms.posted_values(kind, form)
    builds = list(parsed.values["supported_builds"])
    if parsed.errors:
        return _form_page(
            request, opened, kind, values=posted, builds=builds, errors=parsed.errors,
            service=service, status_code=422,
        )  # fmt: skip
    wanted = dict(parsed.values)
    if wanted["slug"] is None:
        wanted["slug"] = service.slug  # an emptied slug field keeps the slug
    wanted["api_config"] = service_forms.merged_config(kind, service.api_config or {}, parsed)
    # PATCH semantics: only what differs is sent (and audited, and may trigger a recheck).
    changes = {
        name: value for name, value in wanted.items() if _differs(getattr(service, name), value)
    }
    if not changes:
        return _done(service.slug, "unchanged")
    try:
        async with runtime.db.session() as session:
            updated = await service_console.edit(
                session,
                runtime.vault,
                opened.user,
                service.id,
                changes,
                origin=request_origin(request),
                now=runtime.clock.now(),
            )
            new_slug = updated.slug
    except ImputehubError as exc:
        return _form_page(
            request, opened, kind, values=posted, builds=builds,
            errors=_error_fields(kind, exc), service=service, status_code=status_for(exc),
        )  # fmt: skip
    return _done(new_slug, "updated")


def _differs(current: Any, wanted: Any) -> bool:
    if isinstance(current, str) and isinstance(wanted, str):
        return current.strip() != wanted.strip()
    if isinstance(current, list | tuple) and isinstance(wanted, list | tuple):
        return list(current) != list(wanted)
    return bool(current != wanted)


# --- the service's page -----------------------------------------------------------------


async def _detail(
    request: Request,
    runtime: Runtime,
    opened: OpenSession,
    slug: str,
    *,
    notice: str | None = None,
    error: str | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        row = await service_console.service_row(session, opened.user, slug)
        checks = await services.health_history(session, opened.user, row.service.id, limit=HISTORY)
        credential = await user_credentials.get_status(
            session, opened.user, row.service.id, scope="platform", now=now
        )
    kind = service_forms.kind_of(row.service.api_type)
    return render_console(
        request,
        "console/services/detail.html",
        {
            "row": row,
            "service": row.service,
            "kind": kind,
            "checks": checks,
            "chart": service_console.health_chart(checks) if checks else None,
            "credential": credential,
            "config": sorted((row.service.api_config or {}).items()),
            "errors": errors or {},
            "notice": notice,
            "error": error,
            "now": now,
        },
        opened=opened,
        status_code=status_code,
    )


@router.get("/console/services/{slug}")
async def detail_page(
    slug: str,
    request: Request,
    runtime: RuntimeDep,
    opened: DetachedAdminSignedIn,
    done: NoticeQuery = None,
) -> Response:
    return await _detail(request, runtime, opened, slug, notice=NOTICES.get(done or ""))


async def _service_id(runtime: Runtime, opened: OpenSession, slug: str) -> tuple[str, str]:
    """(id, slug) of the service `slug` (an id works too); NotFound when there is none."""
    async with runtime.db.session() as session:
        service = await services.get_service(session, opened.user, slug)
        return service.id, service.slug


@router.post("/console/services/{slug}/check")
async def check_now(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    service_id, slug = await _service_id(runtime, opened, slug)
    result = await health.run_health_check(runtime, service_id)
    said = f"Checked now: {result.status}"
    if result.response_time_ms is not None:
        said += f", {result.response_time_ms:.0f} ms"
    if result.queue_size is not None:
        said += f", {result.queue_size} jobs in the service's queue"
    if result.message:
        said += f". The service said: {result.message}"
    return await _detail(request, runtime, opened, slug, notice=_sentence(said))


@router.post("/console/services/{slug}/sync-panels")
async def sync_panels(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    service_id, slug = await _service_id(runtime, opened, slug)
    try:
        result: SyncResult = await panel_sync.sync_panels(runtime, opened.user, service_id)
    except NotFound:
        raise
    except ImputehubError as exc:
        return await _detail(
            request,
            runtime,
            opened,
            slug,
            error=f"The panels could not be synced: {_sentence(exc.message)}",
            status_code=status_for(exc),
        )
    async with runtime.db.session() as session:
        service = await services.get_service(session, opened.user, service_id)
    return render_console(
        request,
        "console/services/synced.html",
        {"service": service, "result": result},
        opened=opened,
    )


# --- the platform credential --------------------------------------------------------------


def _verified_notice(status: user_credentials.CredentialStatus) -> str:
    if status.verified is None:
        verdict = "The service could not say whether the credential is good"
    elif status.verified:
        verdict = "The service accepted the credential"
    else:
        verdict = "The service refused the credential"
    if status.message:
        verdict += f" ({status.message})"
    return _sentence(verdict)


@router.post("/console/services/{slug}/credential")
async def set_credential(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    secret = form.get("credential")
    service_id, slug = await _service_id(runtime, opened, slug)
    try:
        await user_credentials.store(
            runtime,
            opened.user,
            service_id,
            secret if isinstance(secret, str) else "",
            scope="platform",
            origin=request_origin(request),
            now=runtime.clock.now(),
        )
    except NotFound:
        raise
    except ImputehubError as exc:
        # Never sent back into the form: the secret is typed again.
        return await _detail(
            request,
            runtime,
            opened,
            slug,
            errors={"credential": _sentence(exc.message)},
            status_code=status_for(exc),
        )
    # Saved; now ask the service whether it takes it (the page says what it answered).
    try:
        status = await user_credentials.verify(runtime, opened.user, service_id, scope="platform")
    except ImputehubError as exc:
        said = f"The credential was saved, but could not be tested now: {_sentence(exc.message)}"
        return await _detail(request, runtime, opened, slug, notice=said)
    notice = f"The credential was saved. {_verified_notice(status)}"
    return await _detail(request, runtime, opened, slug, notice=notice)


@router.post("/console/services/{slug}/credential/verify")
async def verify_credential(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    service_id, slug = await _service_id(runtime, opened, slug)
    try:
        status = await user_credentials.verify(runtime, opened.user, service_id, scope="platform")
    except NotFound:
        raise
    except ImputehubError as exc:
        return await _detail(
            request,
            runtime,
            opened,
            slug,
            errors={"verify": _sentence(exc.message)},
            status_code=status_for(exc),
        )
    return await _detail(request, runtime, opened, slug, notice=_verified_notice(status))


@router.post("/console/services/{slug}/credential/delete")
async def delete_credential(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    async with runtime.db.session() as session:
        service = await services.get_service(session, opened.user, slug)
        await user_credentials.remove(
            session,
            runtime.vault,
            opened.user,
            service.id,
            scope="platform",
            origin=request_origin(request),
            now=runtime.clock.now(),
        )
        slug = service.slug
    return _done(slug, "credential_deleted")


# --- pause, resume, deactivate ------------------------------------------------------------


async def _set_paused(
    slug: str, request: Request, runtime: Runtime, opened: OpenSession, paused: bool
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    async with runtime.db.session() as session:
        service = await services.get_service(session, opened.user, slug)
        await maintenance.set_paused(
            session,
            opened.user,
            service,
            paused,
            origin=request_origin(request),
            now=runtime.clock.now(),
        )
        slug = service.slug
    if not paused:
        runtime.wake_workers()  # the held jobs were made due
    return _done(slug, "paused" if paused else "resumed")


@router.post("/console/services/{slug}/pause")
async def pause(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    return await _set_paused(slug, request, runtime, opened, True)


@router.post("/console/services/{slug}/resume")
async def resume(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    return await _set_paused(slug, request, runtime, opened, False)


@router.post("/console/services/{slug}/deactivate")
async def deactivate(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    service_id, slug = await _service_id(runtime, opened, slug)
    async with runtime.db.session() as session:
        await service_console.deactivate(
            session,
            opened.user,
            service_id,
            origin=request_origin(request),
            now=runtime.clock.now(),
        )
    return _done(slug, "deactivated")


@router.post("/console/services/{slug}/activate")
async def activate(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    service_id, slug = await _service_id(runtime, opened, slug)
    async with runtime.db.session() as session:
        await service_console.edit(
            session,
            runtime.vault,
            opened.user,
            service_id,
            {"is_active": True},
            origin=request_origin(request),
            now=runtime.clock.now(),
        )
    runtime.wake_workers()  # an activated service is checked at once
    return _done(slug, "activated")

"""Panels: per service, edit display data, activate or deactivate; import a local-engine panel.

Edits and (de)activation call the use cases of PATCH and DELETE /api/v1/reference-panels/{ref}
(registry.panels), so the rules are the same. A local-engine panel is imported from a file the
admin uploaded to the hub (engine.panel_upload_import: the checks of `imputehub panels
import`); the request waits for the import, which reads the file a few times over.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.admin import request_origin
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.api.problems import status_for
from imputehub.db.models import ReferencePanel, Service
from imputehub.domain.errors import ImputehubError
from imputehub.domain.jobs import Build
from imputehub.engine import panel_upload_import
from imputehub.engine.panel_import import PanelImportError
from imputehub.files import records
from imputehub.registry import local_engine, panels, rules, services
from imputehub.runtime import Runtime
from imputehub.web import session_auth
from imputehub.web.console.layout import render_console
from imputehub.web.session_auth import AdminSignedIn, DetachedAdminSignedIn
from imputehub.web.settings_common import NoticeQuery, error_of, field, redirect_done, too_long

router = APIRouter(include_in_schema=False)

# What a redirect after a change says; only these texts, never one taken from the URL.
NOTICES = {
    "saved": "The panel was saved.",
    "activated": "The panel is active: users can choose it for new jobs.",
    "deactivated": "The panel is inactive: users no longer see it; jobs that used it keep it.",
}
EDIT_FIELDS = ("display_name", "slug", "populations", "description")
IMPORT_FIELDS = (
    "file_id",
    "service",
    "display_name",
    "panel_id",
    "build",
    "populations",
    "description",
)
MAX_FILES = 100
BUILDS = tuple(build.value for build in Build)


def split_populations(text: str) -> list[str]:
    """Population labels as typed: separated by commas or spaces."""
    return [label for label in text.replace(",", " ").split() if label]


# --- the list ------------------------------------------------------------------------------


@router.get("/console/panels")
async def panels_list(
    request: Request,
    session: SessionDep,
    opened: AdminSignedIn,
    service: Annotated[str, Query(max_length=100)] = "",
    done: NoticeQuery = None,
) -> Response:
    every = await services.list_services(session, opened.user, include_all=True)
    found = await panels.list_panels(
        session, opened.user, service=service or None, include_all=True
    )
    by_service: dict[str, list[ReferencePanel]] = {}
    for panel in found:
        by_service.setdefault(panel.service_id, []).append(panel)
    shown = [s for s in every if not service or service in (s.id, s.slug)]
    return render_console(
        request,
        "console/panels/list.html",
        {
            "panel_services": every,
            "shown_services": shown,
            "panels_by_service": by_service,
            "chosen_service": service,
            "has_local": any(s.api_type == local_engine.LOCAL_API_TYPE for s in every),
            "notice": NOTICES.get(done or "", ""),
        },
        opened=opened,
    )


# --- importing a local-engine panel ----------------------------------------------------------


async def import_page(
    request: Request,
    session: AsyncSession,
    opened: OpenSession,
    *,
    form: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    imported: panel_upload_import.ImportedPanel | None = None,
    status_code: int = 200,
) -> Response:
    every = await services.list_services(session, opened.user, include_all=True)
    files = await records.list_files(session, opened.user, limit=MAX_FILES)
    return render_console(
        request,
        "console/panels/import.html",
        {
            "local_services": [s for s in every if s.api_type == local_engine.LOCAL_API_TYPE],
            "panel_files": [f for f in files.items if f.kind == "input"],
            "builds": BUILDS,
            "form": form or {},
            "errors": errors or {},
            "imported": imported,
        },
        opened=opened,
        status_code=status_code,
    )


@router.get("/console/panels/import")
async def import_form(
    request: Request,
    session: SessionDep,
    opened: AdminSignedIn,
    file: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    return await import_page(request, session, opened, form={"file_id": file})


@router.post("/console/panels/import")
async def import_panel(
    request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn, now: Now
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    typed = {name: field(form, name).strip() for name in IMPORT_FIELDS}
    replace = field(form, "replace") == "on"
    errors: dict[str, str] = {}
    if not typed["file_id"]:
        errors["file_id"] = "Choose the uploaded panel file."
    if not typed["service"]:
        errors["service"] = "Choose the local engine service."
    if not typed["display_name"]:
        errors["display_name"] = "Give the panel a display name."
    for name, limit in (("display_name", 300), ("panel_id", 100), ("populations", 2000)):
        if problem := too_long(typed[name], limit, "This field"):
            errors[name] = problem
    if problem := too_long(typed["description"], 10_000, "The description"):
        errors["description"] = problem
    status_code = 422
    imported = None
    if not errors:
        try:
            imported = await panel_upload_import.import_stored_panel(
                runtime,
                opened.user,
                panel_upload_import.PanelRequest(
                    file_id=typed["file_id"],
                    service=typed["service"],
                    display_name=typed["display_name"],
                    build=typed["build"],
                    panel_id=typed["panel_id"] or None,
                    populations=split_populations(typed["populations"]),
                    description=typed["description"],
                    replace=replace,
                ),
                origin=request_origin(request),
                now=now,
            )
        except ImputehubError as exc:
            fields = {name: name for name in IMPORT_FIELDS} | {"service": "service"}
            key, message = error_of(exc, fields, "file_id")
            status_code = status_for(exc)
            if status_code == 404:
                key = "file_id"  # a file that is gone (or never was) is the file's problem
            if isinstance(exc, PanelImportError):
                key, status_code = "file_id", 422  # the file, not a service, is at fault
            errors[key] = message
    async with runtime.db.session() as session:
        if imported is None:
            shown = {n: v if n == "description" else v[:300] for n, v in typed.items()}
            shown["replace"] = "on" if replace else ""
            return await import_page(
                request, session, opened, form=shown, errors=errors, status_code=status_code
            )
        return await import_page(request, session, opened, imported=imported)


# --- one panel -----------------------------------------------------------------------------


async def panel_page(
    request: Request,
    session: AsyncSession,
    opened: OpenSession,
    ref: str,
    *,
    form: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    panel = await panels.get_panel(session, opened.user, ref[:300])
    service = await session.get(Service, panel.service_id)
    shown = {
        "display_name": panel.display_name,
        "slug": panel.slug,
        "populations": ", ".join(panel.populations or []),
        "description": panel.description or "",
        **(form or {}),
    }
    return render_console(
        request,
        "console/panels/edit.html",
        {
            "panel": panel,
            "panel_service": service,
            "form": shown,
            "errors": errors or {},
            "notice": NOTICES.get(notice or "", ""),
            "error": error,
        },
        opened=opened,
        status_code=status_code,
    )


@router.get("/console/panels/{ref}")
async def panel_detail(
    ref: str,
    request: Request,
    session: SessionDep,
    opened: AdminSignedIn,
    done: NoticeQuery = None,
) -> Response:
    return await panel_page(request, session, opened, ref, notice=done)


@router.post("/console/panels/{ref}")
async def save_panel(
    ref: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: AdminSignedIn,
    now: Now,
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    typed = {name: field(form, name).strip() for name in EDIT_FIELDS}
    errors: dict[str, str] = {}
    limits = {
        "display_name": panels.MAX_DISPLAY_NAME_LENGTH,
        "slug": rules.MAX_SLUG_LENGTH,
        "populations": 2000,
        "description": panels.MAX_DESCRIPTION_LENGTH,
    }
    for name, limit in limits.items():
        if problem := too_long(typed[name], limit, "This field"):
            errors[name] = problem
    status_code = 422
    if not errors:
        changes = {
            "display_name": typed["display_name"],
            "slug": typed["slug"],
            "populations": split_populations(typed["populations"]),
            "description": typed["description"],
        }
        try:
            panel = await panels.update_panel(
                session, opened.user, ref[:300], changes, now=now, origin=request_origin(request)
            )
        except ImputehubError as exc:
            if status_for(exc) == 404:
                raise
            key, message = error_of(exc, {name: name for name in EDIT_FIELDS}, "display_name")
            errors[key] = message
            status_code = status_for(exc)
        else:
            return redirect_done(f"/console/panels/{panel.id}", "saved")
    shown = {name: value[:300] if name != "description" else value for name, value in typed.items()}
    return await panel_page(
        request, session, opened, ref, form=shown, errors=errors, status_code=status_code
    )


async def _set_active(
    request: Request,
    runtime: Runtime,
    session: AsyncSession,
    opened: OpenSession,
    ref: str,
    *,
    now: datetime,
    active: bool,
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    try:
        if active:
            panel = await panels.update_panel(
                session,
                opened.user,
                ref[:300],
                {"is_active": True},
                now=now,
                origin=request_origin(request),
            )
        else:
            panel = await panels.deactivate_panel(
                session, opened.user, ref[:300], now=now, origin=request_origin(request)
            )
    except ImputehubError as exc:
        if status_for(exc) == 404:
            raise
        # E.g. its service no longer offers the panel's build.
        return await panel_page(
            request,
            session,
            opened,
            ref,
            error=error_of(exc, {}, "")[1],
            status_code=status_for(exc),
        )
    return redirect_done(f"/console/panels/{panel.id}", "activated" if active else "deactivated")


@router.post("/console/panels/{ref}/deactivate")
async def deactivate_panel(
    ref: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: AdminSignedIn,
    now: Now,
) -> Response:
    return await _set_active(request, runtime, session, opened, ref, now=now, active=False)


@router.post("/console/panels/{ref}/activate")
async def activate_panel(
    ref: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: AdminSignedIn,
    now: Now,
) -> Response:
    return await _set_active(request, runtime, session, opened, ref, now=now, active=True)

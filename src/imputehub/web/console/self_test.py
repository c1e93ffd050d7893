"""The end-to-end self-test of a service, started and followed from the console.

`GET /console/services/{slug}/self-test[?job=<id>]`: a "Run the self-test" form (the panel
to test with, default the service's first), the service's latest self-tests, and one report
in full (the asked-for one, else the latest): its steps and their times, the result check
and the verdict. While that job runs, static/js/console_self_test.js follows the job's
events and reloads the page when its state changes; without scripts, a reload shows the
same. `POST` starts one (CSRF-checked) and redirects to its report.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.admin import request_origin
from imputehub.api.deps import RuntimeDep
from imputehub.api.problems import status_for
from imputehub.domain.errors import ImputehubError, NotFound
from imputehub.operations import self_test, self_test_report
from imputehub.runtime import Runtime
from imputehub.web import session_auth
from imputehub.web.console.layout import render_console
from imputehub.web.session_auth import DetachedAdminSignedIn
from imputehub.web.settings_common import field, sentence

router = APIRouter(include_in_schema=False)

# What a redirect after a start says; only these texts, never one taken from the URL.
NOTICES = {"started": "The self-test was started: its job is below, followed as it runs."}
JobQuery = Annotated[str | None, Query(alias="job", max_length=64)]
DoneQuery = Annotated[str | None, Query(alias="done", max_length=40)]


async def _page(
    request: Request,
    runtime: Runtime,
    opened: OpenSession,
    slug: str,
    *,
    job_id: str | None = None,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    found = await self_test_report.page(runtime, opened.user, slug, job_id=job_id)
    return render_console(
        request,
        "console/self_test.html",
        {"selftest": found, "notice": notice, "error": error},
        opened=opened,
        status_code=status_code,
    )


@router.get("/console/services/{slug}/self-test")
async def self_test_page(
    slug: str,
    request: Request,
    runtime: RuntimeDep,
    opened: DetachedAdminSignedIn,
    job: JobQuery = None,
    done: DoneQuery = None,
) -> Response:
    return await _page(
        request, runtime, opened, slug, job_id=job or None, notice=NOTICES.get(done or "")
    )


@router.post("/console/services/{slug}/self-test")
async def start_self_test(
    slug: str, request: Request, runtime: RuntimeDep, opened: DetachedAdminSignedIn
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    panel = field(form, "panel").strip() or None
    input_file = field(form, "input_file").strip()[:100] or None
    try:
        job = await self_test.start_self_test(
            runtime,
            opened.user,
            slug,
            panel_ref=panel,
            input_file_id=input_file,
            origin=request_origin(request),
            now=runtime.clock.now(),
        )
    except NotFound:
        raise  # no such service: the 404 page
    except ImputehubError as exc:
        return await _page(
            request,
            runtime,
            opened,
            slug,
            error=sentence(exc.message),
            status_code=status_for(exc),
        )
    return RedirectResponse(
        f"/console/services/{quote(slug, safe='')}/self-test?job={quote(job.id)}&done=started",
        status_code=303,
    )

"""Files: my uploads with their pre-flight reports, sizes and age; one file's full report;
delete a file; unfinished resumable uploads with their progress and expiry, and abort them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.files import chunked, records
from imputehub.web import session_auth
from imputehub.web.session_auth import SignedIn
from imputehub.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 20
MAX_PAGE = 1_000_000  # far past any real list; keeps OFFSET a small number
MAX_ID = 64

FileId = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Notice = Annotated[str | None, Query(max_length=40)]

NOTICES = {
    "deleted": "The file was deleted.",
    "aborted": "The unfinished upload was removed and its space freed.",
}


def age_seconds(moment: datetime, now: datetime) -> float:
    return max(0.0, (now - moment).total_seconds())


@router.get("/files")
async def file_list(
    request: Request,
    session: SessionDep,
    opened: SignedIn,
    now: Now,
    page: PageNumber = 1,
    notice: Notice = None,
) -> Response:
    user = opened.user
    listed = await records.list_files(session, user, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    pages = max(1, -(-listed.total // PER_PAGE))
    uploads = await chunked.unfinished_uploads(session, user, now=now)
    return render(
        request,
        "files/list.html",
        {
            "files": listed.items,
            "total": listed.total,
            "page": page,
            "pages": pages,
            "jobs": await records.jobs_of_files(session, listed.items),
            "uploads": uploads,
            "now": now,
            "age": age_seconds,
            "notice": NOTICES.get(notice or "", ""),
        },
        opened=opened,
    )


@router.get("/files/{file_id}")
async def file_page(
    request: Request, file_id: FileId, session: SessionDep, opened: SignedIn, now: Now
) -> Response:
    record = await records.get_file(session, opened.user, file_id)
    jobs = await records.jobs_of_files(session, [record])
    return render(
        request,
        "files/detail.html",
        {
            "file": record,
            "report": record.validation,
            "jobs": jobs[record.id],
            "now": now,
            "age": age_seconds,
        },
        opened=opened,
    )


DetachedSession = session_auth.DetachedSignedIn


@router.post("/files/{file_id}/delete")
async def delete_file(
    request: Request, file_id: FileId, runtime: RuntimeDep, opened: DetachedSession
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    await records.delete_file(runtime, opened.user, file_id)
    return RedirectResponse("/files?notice=deleted", status_code=303)


@router.post("/files/uploads/{upload_id}/abort")
async def abort_upload(
    request: Request,
    upload_id: Annotated[str, Path(min_length=1, max_length=MAX_ID)],
    runtime: RuntimeDep,
    opened: DetachedSession,
    now: Now,
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    await chunked.abort_upload(runtime, opened.user, upload_id, now=now)
    return RedirectResponse("/files?notice=aborted", status_code=303)

"""The signed input links remote services download job inputs from (see files/links.py).

No bearer token here: the link's signature is the authorization, and it covers only the
one file of the one job, until it expires or the job ends.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from imputehub.api.deps import RuntimeDep, SessionDep
from imputehub.api.downloads import download_response
from imputehub.db.models import Job, JobInput, User
from imputehub.domain.errors import Gone, NotFound, PermissionDenied
from imputehub.domain.jobs import ACTIVE, JobStatus
from imputehub.files import downloads
from imputehub.files.links import LinkSigner

router = APIRouter(prefix="/links", tags=["files"])

MAX_SIGNATURE = 128


@router.get(
    "/{job_id}/{file_id}/{filename}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        206: {"description": "the requested byte range"},
        403: {"description": "the link is not one the hub made, or it has expired"},
        410: {"description": "the job the link was made for has ended"},
    },
    summary="Download a job input by its signed link (for services, not people)",
)
async def input_by_link(
    job_id: str,
    file_id: str,
    filename: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(min_length=1, max_length=MAX_SIGNATURE)],
) -> Response:
    now = runtime.clock.now()
    signer = LinkSigner.from_secret_key(runtime.secret_key)
    if not signer.valid(job_id, file_id, filename, expires, signature, now=now):
        raise PermissionDenied("this link is not valid or has expired")
    job = await session.get(Job, job_id)
    if job is None or JobStatus(job.status) not in ACTIVE:
        raise Gone("the job this link was made for has ended")
    linked = await session.scalar(
        select(JobInput).where(JobInput.job_id == job_id, JobInput.file_id == file_id)
    )
    owner = await session.get(User, job.user_id)
    if linked is None or owner is None or linked.file.filename != filename:
        raise NotFound("the job no longer has this input")
    settings = runtime.settings
    download = await downloads.open_download(
        session,
        runtime.storage,
        owner,
        file_id,
        downloads.Conditions(
            range=request.headers.get("range"),
            if_none_match=request.headers.get("if-none-match"),
            if_range=request.headers.get("if-range"),
        ),
        # Never redirect a remote service to our object store: it may be private.
        presign_seconds=None,
        chunk_size=settings.upload_chunk_size,
    )
    return download_response(download, instance=request.url.path)

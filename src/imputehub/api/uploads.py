"""Resumable upload routes: init, one part at a time (any order), status, complete, abort."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.api.deps import CurrentUser, Now, RuntimeDep, SessionDep
from imputehub.api.files import DetachedUser, FilePublic, request_chunks
from imputehub.files import assembly, chunked

router = APIRouter(prefix="/uploads", tags=["uploads"])

UploadId = Annotated[str, Path(max_length=64)]


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=1000)
    size: int = Field(gt=0, description="the whole file's size in bytes")
    part_size: int | None = Field(
        default=None,
        gt=0,
        description="bytes per part (default 8 MiB); every part but the last has this size",
    )
    sha256: str | None = Field(
        default=None, description="the whole file's SHA-256, checked at completion"
    )


class UploadCreated(BaseModel):
    upload_id: str
    part_size: int
    part_count: int
    expires_at: datetime


class PartPublic(BaseModel):
    index: int
    size: int
    sha256: str


class UploadPublic(BaseModel):
    upload_id: str
    filename: str
    size: int
    part_size: int
    part_count: int
    parts: list[PartPublic]
    received_bytes: int
    missing: list[int]
    status: str
    file_id: str | None
    expires_at: datetime


PART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post("/init", response_model=UploadCreated, status_code=status.HTTP_201_CREATED)
async def init_upload(
    body: UploadCreate, runtime: RuntimeDep, user: DetachedUser, now: Now
) -> UploadCreated:
    upload = await chunked.init_upload(
        runtime,
        user,
        chunked.UploadRequest(
            filename=body.filename, size=body.size, part_size=body.part_size, sha256=body.sha256
        ),
        now=now,
    )
    return UploadCreated(
        upload_id=upload.id,
        part_size=upload.part_size,
        part_count=upload.part_count,
        expires_at=upload.expires_at,
    )


@router.put(
    "/{upload_id}/part/{index}",
    response_model=PartPublic,
    openapi_extra=PART_BODY,
    summary="Send part `index` (0-based) as the raw request body",
)
async def put_part(
    upload_id: UploadId,
    index: Annotated[int, Path(ge=0)],
    request: Request,
    runtime: RuntimeDep,
    user: DetachedUser,
    now: Now,
    x_part_sha256: Annotated[str | None, Header(max_length=128)] = None,
) -> PartPublic:
    part = await chunked.receive_part(
        runtime,
        user,
        upload_id,
        index,
        request_chunks(request),
        content_length=request.headers.get("content-length"),
        part_sha256=x_part_sha256,
        now=now,
    )
    return PartPublic(index=part.index, size=part.size, sha256=part.sha256)


@router.get("/{upload_id}", response_model=UploadPublic)
async def get_upload(
    upload_id: UploadId, session: SessionDep, user: CurrentUser, now: Now
) -> UploadPublic:
    state = await chunked.upload_state(session, user, upload_id, now=now)
    upload = state.upload
    return UploadPublic(
        upload_id=upload.id,
        filename=upload.filename,
        size=upload.size,
        part_size=upload.part_size,
        part_count=upload.part_count,
        parts=[PartPublic(index=p.index, size=p.size, sha256=p.sha256) for p in state.parts],
        received_bytes=state.received_bytes,
        missing=state.missing,
        status=upload.status,
        file_id=upload.file_id,
        expires_at=upload.expires_at,
    )


@router.post(
    "/{upload_id}/complete",
    response_model=FilePublic,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": FilePublic, "description": "already completed: the same file"}},
)
async def complete_upload(
    upload_id: UploadId, response: Response, runtime: RuntimeDep, user: DetachedUser, now: Now
) -> FilePublic:
    completion = await assembly.complete_upload(runtime, user, upload_id, now=now)
    if not completion.created:
        response.status_code = status.HTTP_200_OK
    return FilePublic.model_validate(completion.record)


@router.delete("/{upload_id}", status_code=status.HTTP_204_NO_CONTENT)
async def abort_upload(
    upload_id: UploadId, runtime: RuntimeDep, user: DetachedUser, now: Now
) -> Response:
    await chunked.abort_upload(runtime, user, upload_id, now=now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

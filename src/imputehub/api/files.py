"""Files routes: upload (streamed), list, look up, download, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from imputehub.accounts import api_tokens
from imputehub.api.deps import CurrentUser, Now, Offset, RuntimeDep, SessionDep
from imputehub.api.downloads import download_response
from imputehub.db.models import User
from imputehub.domain.errors import AuthenticationRequired, InvalidInput
from imputehub.files import downloads, forms, records
from imputehub.monitoring import counters

router = APIRouter(prefix="/files", tags=["files"])

_bearer = HTTPBearer(auto_error=False, description="access token or personal API token")


async def get_detached_user(
    runtime: RuntimeDep,
    now: Now,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The caller, resolved in a short transaction of its own.

    For routes that stream request bodies or do storage I/O around their own
    transactions: they must not hold a database connection for the whole request.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationRequired("log in first: send 'Authorization: Bearer <token>'")
    async with runtime.db.session() as session:
        return await api_tokens.resolve_bearer(
            session, credentials.credentials, secret_key=runtime.secret_key, now=now
        )


DetachedUser = Annotated[User, Depends(get_detached_user)]


async def request_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that hangs up becomes one of our errors."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise InvalidInput(
            "the connection closed before the request body was complete", code="client_disconnected"
        ) from None


class FilePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str
    size: int
    sha256: str
    kind: str
    job_id: str | None
    created_at: datetime
    validation: dict[str, Any] | None = Field(
        default=None,
        description="the pre-flight VCF report of an uploaded file (format, samples, "
        "variants, build, problems...); none for result files",
    )


class FilePage(BaseModel):
    items: list[FilePublic]
    total: int
    limit: int
    offset: int


def multipart_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """OpenAPI for a body the route reads itself (so FastAPI cannot describe it)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": properties, "required": required}
                }
            },
        }
    }


UPLOAD_BODY = multipart_body({"file": {"type": "string", "format": "binary"}}, ["file"])


@router.post(
    "",
    response_model=FilePublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=UPLOAD_BODY,
    summary="Upload one file (multipart field 'file'), streamed to storage",
)
async def upload_file(
    request: Request, runtime: RuntimeDep, user: DetachedUser, now: Now
) -> FilePublic:
    record = await forms.receive_file(
        runtime,
        user_id=user.id,
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
        chunks=request_chunks(request),
        now=now,
    )
    await counters.increment_alone(
        runtime.db, "imputehub_upload_bytes_total", {"kind": "direct"}, record.size
    )
    return FilePublic.model_validate(record)


@router.get("", response_model=FilePage)
async def list_files(
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=records.MAX_LIMIT)] = records.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> FilePage:
    page = await records.list_files(session, user, limit=limit, offset=offset)
    return FilePage(
        items=[FilePublic.model_validate(item) for item in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{file_id}", response_model=FilePublic)
async def get_file(file_id: str, session: SessionDep, user: CurrentUser) -> FilePublic:
    return FilePublic.model_validate(await records.get_file(session, user, file_id))


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        206: {"description": "the requested byte range (Range: bytes=a-b, a- or -n)"},
        304: {"description": "unchanged: If-None-Match named the file's ETag"},
        307: {"description": "fetch it from object storage at this short-lived URL"},
        416: {"description": "the range is outside the file"},
    },
)
async def download_file(
    file_id: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    user: CurrentUser,
) -> Response:
    settings = runtime.settings
    download = await downloads.open_download(
        session,
        runtime.storage,
        user,
        file_id,
        downloads.Conditions(
            range=request.headers.get("range"),
            if_none_match=request.headers.get("if-none-match"),
            if_range=request.headers.get("if-range"),
        ),
        presign_seconds=(
            settings.storage_presign_seconds if settings.storage_redirect_downloads else None
        ),
        chunk_size=settings.upload_chunk_size,
    )
    return download_response(download, instance=request.url.path)


@router.delete("/{file_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_file(file_id: str, runtime: RuntimeDep, user: DetachedUser) -> Response:
    await records.delete_file(runtime, user, file_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Jobs routes: create (JSON or multipart with files), list, inspect, cancel, delete, retry."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.api import job_compatibility
from imputehub.api.admin import request_origin
from imputehub.api.deps import CurrentUser, Now, Offset, RuntimeDep, SessionDep
from imputehub.api.files import DetachedUser, multipart_body, request_chunks
from imputehub.api.job_schemas import (
    FederatedCheckPublic,
    JobCheck,
    JobCheckPublic,
    JobCreate,
    JobLogs,
    JobPage,
    JobProgress,
    JobPublic,
    JobStatsPublic,
    ResultFilePublic,
    StatusUpdatePublic,
    job_public,
    job_summary,
)
from imputehub.db.models import Job
from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import JobMode, JobStatus
from imputehub.domain.slots import SlotWait
from imputehub.files import forms, uploads
from imputehub.jobs import actions, create, federated, queries, stats, validation

router = APIRouter(prefix="/jobs", tags=["jobs"])
Body = TypeVar("Body", bound=BaseModel)


# --- creating -----------------------------------------------------------------------------

JOB_FORM = forms.FormSpec(
    file_fields=frozenset({"input_file"}),
    text_fields=frozenset(JobCreate.model_fields),
    max_files=validation.MAX_INPUT_FILES,
)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` written in place.

    The route reads its body itself, so FastAPI does not list the model under
    components; references into `$defs` would dangle in the OpenAPI document.
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _create_body() -> dict[str, Any]:
    json_schema = inline_schema(JobCreate)
    form_fields = {
        **{name: {"type": "string"} for name in JobCreate.model_fields},
        "input_file_ids": {
            "type": "array",
            "items": {"type": "string"},
            "description": "repeat the field, or separate ids with commas",
        },
        "input_file": {"type": "array", "items": {"type": "string", "format": "binary"}},
    }
    form = multipart_body(form_fields, json_schema["required"])
    form["requestBody"]["content"]["application/json"] = {"schema": json_schema}
    return form


CREATE_BODY = _create_body()


def _invalid_body(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(exc.errors(include_url=False, include_context=False))


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type in ("", "application/json") or media_type.endswith("+json")


async def _json_body(request: Request, model: type[Body]) -> Body:
    # The body's size is bounded before it gets here (api/body_limit.py).
    body = bytearray()
    async for chunk in request_chunks(request):
        body += chunk
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise _invalid_body(exc) from None


def _form_body(fields: dict[str, list[str]]) -> JobCreate:
    """The form's fields as a JobCreate; empty values count as absent (as HTML forms send)."""
    data: dict[str, Any] = {}
    for key, values in fields.items():
        present = [v for v in values if v.strip()]
        if key == "input_file_ids":
            # Repeated fields and comma-separated lists both work.
            data[key] = [i.strip() for v in present for i in v.split(",") if i.strip()]
        elif len(present) > 1:
            raise InvalidInput(f"form field '{key}' is given more than once", field=key)
        elif present:
            data[key] = present[0]
    try:
        return JobCreate.model_validate(data)
    except ValidationError as exc:
        raise _invalid_body(exc) from None


@router.post(
    "",
    response_model=JobPublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=CREATE_BODY,
    summary="Create a job (JSON, or a multipart form with the files in 'input_file')",
)
async def create_job(
    request: Request, runtime: RuntimeDep, user: DetachedUser, now: Now
) -> JobPublic:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    staged: list[uploads.StagedUpload] = []
    if media_type == "multipart/form-data":
        form = await forms.receive_form(
            runtime.storage,
            spec=JOB_FORM,
            content_type=request.headers.get("content-type"),
            content_length=request.headers.get("content-length"),
            chunks=request_chunks(request),
            user_id=user.id,
            max_bytes=runtime.settings.max_upload_size,
            now=now,
        )
        staged = form.uploads
        try:
            body = _form_body(form.fields)
        except BaseException:
            await uploads.discard(runtime.storage, staged)
            raise
    elif _is_json(request):
        body = await _json_body(request, JobCreate)
    else:
        raise InvalidInput(
            "send the job as application/json, or as multipart/form-data with its files",
            code="unsupported_media_type",
        )
    wanted = body.federated_request()
    if wanted is not None:
        if staged:  # a form cannot carry targets; the body check refuses them before this
            await uploads.discard(runtime.storage, staged)
            raise InvalidInput("send a federated job as application/json", field="targets")
        parent, children = await federated.submit(
            runtime, owner_id=user.id, request=wanted, now=now
        )
        runtime.wake_workers()
        return job_public(parent, children=children)
    job = await create.create_job_with_uploads(
        runtime, owner_id=user.id, request=body.to_request(), uploads=staged, now=now
    )
    runtime.wake_workers()  # committed: a worker in this process may start at once
    return job_public(job)


# A route of its own rather than `POST /jobs?dry_run=true`: its body differs (files are
# described, not sent), it answers 200 with a preview rather than 201 with a job, and a
# client that drops a query parameter on the way must not create a real job by accident.
@router.post(
    "/check",
    response_model=JobCheckPublic | FederatedCheckPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(JobCheck)}},
        }
    },
    summary="Check a job without creating it: POST /jobs's checks, nothing written",
)
async def check_job(
    request: Request, runtime: RuntimeDep, user: DetachedUser
) -> JobCheckPublic | FederatedCheckPublic:
    """Answers 200 with the job POST /jobs would create, or the problem it would answer.

    Advisory: the files' reports are the client's own; POST /jobs checks everything again.
    """
    if not _is_json(request):
        raise InvalidInput(
            "send the job to check as application/json", code="unsupported_media_type"
        )
    body = await _json_body(request, JobCheck)
    wanted = body.federated_request()
    if wanted is not None:
        previews = await federated.preview(
            runtime, owner_id=user.id, request=wanted, planned=body.planned()
        )
        return FederatedCheckPublic(
            name=previews[0].name,
            build=previews[0].build,
            mode=previews[0].mode,
            targets=[JobCheckPublic.model_validate(item) for item in previews],
        )
    preview = await create.preview_job(
        runtime, owner_id=user.id, request=body.to_request(), planned=body.planned()
    )
    return JobCheckPublic.model_validate(preview)


# --- reading ------------------------------------------------------------------------------


@router.get("", response_model=JobPage)
async def list_jobs(
    session: SessionDep,
    user: CurrentUser,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    service_id: Annotated[str | None, Query(max_length=100)] = None,
    mode: JobMode | None = None,
    q: Annotated[str | None, Query(max_length=queries.MAX_QUERY)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
    offset: Offset = 0,
    all_users: Annotated[bool, Query(alias="all", description="admins: everyone's jobs")] = False,
    parent_id: Annotated[
        str | None, Query(max_length=64, description="a federated job's children")
    ] = None,
    children: Annotated[
        bool,
        Query(description="list federated jobs' children too (a service's jobs always do)"),
    ] = False,
) -> JobPage:
    filters = queries.JobFilters(
        status=status_,
        service=service_id,
        mode=mode,
        q=q,
        all_users=all_users,
        parent_id=parent_id,
        with_children=children,
    )
    page = await queries.list_jobs(session, user, filters=filters, limit=limit, offset=offset)
    return JobPage(
        items=[job_summary(job) for job in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/stats", response_model=JobStatsPublic)
async def job_stats(
    session: SessionDep,
    user: CurrentUser,
    all_users: Annotated[bool, Query(alias="all", description="admins: everyone's jobs")] = False,
) -> JobStatsPublic:
    result = await stats.job_stats(session, user, all_users=all_users)
    return JobStatsPublic(
        by_status=result.by_status,
        total=result.total,
        active=result.active,
        completed=result.completed,
        failed=result.failed,
        cancelled=result.cancelled,
        success_rate=result.success_rate,
        mean_execution_time_seconds=result.mean_execution_time_seconds,
    )


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: str, session: SessionDep, user: CurrentUser) -> JobPublic:
    job = await queries.job_with_inputs(session, user, job_id)
    return await _public(session, job, slot_wait=await queries.slot_wait(session, job))


async def _public(
    session: AsyncSession, job: Job, *, slot_wait: SlotWait | None = None
) -> JobPublic:
    return job_public(
        job, slot_wait=slot_wait, children=await federated.children_if_parent(session, job)
    )


@router.get("/{job_id}/status-updates", response_model=list[StatusUpdatePublic])
async def status_updates(
    job_id: str, session: SessionDep, user: CurrentUser
) -> list[StatusUpdatePublic]:
    rows = await queries.status_updates(session, user, job_id)
    return [
        StatusUpdatePublic(
            status=JobStatus(row.status),
            progress_percentage=row.progress,
            message=row.message,
            created_at=row.created_at,
        )
        for row in rows
    ]


@router.get("/{job_id}/progress", response_model=JobProgress)
async def progress(job_id: str, session: SessionDep, user: CurrentUser) -> JobProgress:
    row = await queries.job_progress(session, user, job_id)
    return JobProgress(
        id=row.id,
        status=JobStatus(row.status),
        progress_percentage=row.progress,
        updated_at=row.updated_at,
    )


@router.get("/{job_id}/logs", response_model=JobLogs)
async def logs(job_id: str, session: SessionDep, user: CurrentUser) -> JobLogs:
    job = await queries.get_job(session, user, job_id)
    return JobLogs(id=job.id, logs=[str(line) for line in job.service_logs or []])


@router.get("/{job_id}/results", response_model=list[ResultFilePublic])
async def results(
    job_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> list[ResultFilePublic]:
    files = await queries.result_files(session, user, job_id)
    return [
        ResultFilePublic(
            id=f.id,
            filename=f.filename,
            size=f.size,
            sha256=f.sha256,
            download_url=str(request.app.url_path_for("download_file", file_id=f.id)),
        )
        for f in files
    ]


# --- acting -------------------------------------------------------------------------------


@router.post("/{job_id}/cancel", response_model=JobPublic)
async def cancel(
    job_id: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    user: CurrentUser,
    now: Now,
    after: BackgroundTasks,
) -> JobPublic:
    job = await actions.cancel_job(session, user, job_id, now=now, origin=request_origin(request))
    after.add_task(runtime.wake_workers)  # after the commit: the worker tells the service
    return await _public(session, job)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        202: {"model": JobPublic, "description": "the job was active: cancelling it instead"},
        204: {"description": "the finished job and its results were deleted"},
    },
)
async def delete_job(
    job_id: str, request: Request, runtime: RuntimeDep, user: DetachedUser, now: Now
) -> Response:
    job = await actions.delete_job(runtime, user, job_id, now=now, origin=request_origin(request))
    if job is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return JSONResponse(jsonable_encoder(job_public(job)), status_code=status.HTTP_202_ACCEPTED)


@router.post("/{job_id}/retry", response_model=JobPublic, status_code=status.HTTP_201_CREATED)
async def retry(
    job_id: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    user: CurrentUser,
    now: Now,
    after: BackgroundTasks,
) -> JobPublic:
    after.add_task(runtime.wake_workers)  # runs after the commit
    job = await actions.retry_job(
        session,
        user,
        job_id,
        now=now,
        max_active_jobs=runtime.settings.max_active_jobs_per_user,
        origin=request_origin(request),
    )
    return await _public(session, job)


# POST /jobs/compatibility (its own module: a file's fit with every panel on offer).
router.include_router(job_compatibility.router)

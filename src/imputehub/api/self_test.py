"""The end-to-end self-test of a service over REST (admins).

- `POST /services/{ref}/self-test` (body `{"panel": "<id or slug>"}` or empty): starts one,
  201 with its first report; the job is the admin's own, so `/jobs/{id}/events` follows it.
- `GET /services/{ref}/self-test`: the service's latest self-tests (job, status, times),
  newest first, without the result check (reading results is for one report at a time).
- `GET /services/{ref}/self-test/{job_id}`: the report: steps with their times, total
  time, the result check and the verdict (`passed` only when the job completed and its
  results check out). See operations/self_test.py for what each part means.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.api.admin import request_origin
from imputehub.api.deps import CurrentUser, Now, RuntimeDep, SessionDep
from imputehub.api.files import DetachedUser
from imputehub.operations import self_test
from imputehub.operations import self_test_report as reports

router = APIRouter(prefix="/services", tags=["services"])


class SelfTestStart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    panel: str | None = Field(
        default=None,
        min_length=1,
        max_length=300,
        description="a panel of the service (hub id or slug, or the service's panel id); "
        "default: its first active panel",
    )
    input_file: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="one of your uploaded files to test with instead of the bundled input "
        "(for a remote server whose QC wants real panel sites)",
    )


class StepPublic(BaseModel):
    name: str = Field(
        description="created, submitted, queued, running, fetching, then the final state"
    )
    at: datetime | None = Field(description="null: the job did not (yet) pass this step")
    seconds_from_start: float | None
    seconds_from_previous: float | None
    message: str


class ResultCheckPublic(BaseModel):
    filename: str
    size: int
    vcf: bool
    ok: bool
    problem: str | None


class ResultsPublic(BaseModel):
    count: int
    total_bytes: int
    files: list[ResultCheckPublic]


class SelfTestReport(BaseModel):
    job_id: str
    service: str
    service_name: str
    panel: str | None
    status: str
    progress: float
    verdict: str = Field(description="passed | failed | running")
    message: str
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    total_seconds: float = Field(description="to the final state; so far while running")
    steps: list[StepPublic]
    results: ResultsPublic

    @classmethod
    def of(cls, found: reports.Report) -> SelfTestReport:
        return cls(
            job_id=found.job_id,
            service=found.service_slug,
            service_name=found.service_name,
            panel=found.panel_slug,
            status=found.status,
            progress=found.progress,
            verdict=found.verdict,
            message=found.message,
            error=found.error,
            created_at=found.created_at,
            finished_at=found.finished_at,
            total_seconds=found.total_seconds,
            steps=[StepPublic(**step.__dict__) for step in found.steps],
            results=ResultsPublic(
                count=len(found.results),
                total_bytes=found.result_bytes,
                files=[ResultCheckPublic(**item.__dict__) for item in found.results],
            ),
        )


class SelfTestSummary(BaseModel):
    job_id: str
    name: str
    status: str
    progress: float
    error: str | None
    created_at: datetime
    completed_at: datetime | None


@router.post(
    "/{ref}/self-test",
    response_model=SelfTestReport,
    status_code=status.HTTP_201_CREATED,
    summary="Start the end-to-end self-test of a service (admins)",
)
async def start_self_test(
    ref: str,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    user: DetachedUser,
    now: Now,
    body: Annotated[SelfTestStart | None, Body()] = None,
) -> SelfTestReport:
    job = await self_test.start_self_test(
        runtime,
        user,
        ref,
        panel_ref=body.panel if body is not None else None,
        input_file_id=body.input_file if body is not None else None,
        origin=request_origin(request),
        now=now,
    )
    response.headers["Location"] = f"{request.url.path}/{job.id}"
    return SelfTestReport.of(await reports.report(runtime, user, ref, job.id))


@router.get(
    "/{ref}/self-test",
    response_model=list[SelfTestSummary],
    summary="A service's latest self-tests (admins)",
)
async def list_self_tests(
    ref: str,
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=self_test.MAX_RECENT)] = self_test.DEFAULT_RECENT,
) -> list[SelfTestSummary]:
    _, jobs = await self_test.recent_self_tests(session, user, ref, limit=limit)
    return [
        SelfTestSummary(
            job_id=job.id,
            name=job.name,
            status=job.status,
            progress=job.progress,
            error=job.error_message,
            created_at=job.created_at,
            completed_at=job.completed_at,
        )
        for job in jobs
    ]


@router.get(
    "/{ref}/self-test/{job_id}",
    response_model=SelfTestReport,
    summary="The report of a service's self-test (admins)",
)
async def self_test_report(
    ref: str, job_id: str, runtime: RuntimeDep, user: DetachedUser
) -> SelfTestReport:
    return SelfTestReport.of(await reports.report(runtime, user, ref, job_id))

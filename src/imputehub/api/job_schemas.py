"""The jobs API's wire models: request bodies, public views, and how a job becomes one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from imputehub.db.models import Job
from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import Build, JobMode, JobStatus, Phasing
from imputehub.domain.slots import SlotWait
from imputehub.domain.vcf import Severity
from imputehub.jobs import create, federated, lifecycle, validation

# Chromosome names and problems in one client report (a checker's report has at most
# 20 names and one problem per rule).
MAX_REPORT_ITEMS = 100


class TargetCreate(BaseModel):
    """One service and panel of a federated job."""

    model_config = ConfigDict(extra="forbid")

    service_id: str = Field(min_length=1, max_length=100, description="service id or slug")
    reference_panel_id: str = Field(
        min_length=1, max_length=100, description="reference panel id or slug"
    )
    population: str | None = Field(default=None, max_length=validation.MAX_POPULATION)
    phasing: Phasing | None = Field(default=None, description="default: the job's phasing")

    def to_target(self) -> federated.Target:
        return federated.Target(
            service=self.service_id,
            reference_panel=self.reference_panel_id,
            population=self.population,
            phasing=self.phasing.value if self.phasing is not None else None,
        )


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=validation.MAX_NAME)
    description: str | None = Field(default=None, max_length=validation.MAX_DESCRIPTION)
    service_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="service id or slug (a job at one service; or give `targets`)",
    )
    reference_panel_id: str | None = Field(
        default=None, min_length=1, max_length=100, description="reference panel id or slug"
    )
    targets: list[TargetCreate] | None = Field(
        default=None,
        max_length=federated.MAX_TARGETS_CEILING,
        description=(
            "a federated job: the same files sent to each service and panel (2 up to "
            "IMPUTEHUB_MAX_TARGETS_PER_JOB); instead of service_id and reference_panel_id"
        ),
    )
    notify_each_target: bool = Field(
        default=False,
        description="a federated job: notify of each target's job too, not only of the whole",
    )
    input_file_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=validation.MAX_INPUT_FILES
    )
    build: Build
    phasing: Phasing | None = Field(
        default=None,
        description="required in imputation mode; a qc_only job without it gets "
        f"'{validation.QC_ONLY_PHASING.value}', the Michigan servers' default",
    )
    population: str | None = Field(default=None, max_length=validation.MAX_POPULATION)
    mode: JobMode = JobMode.IMPUTATION
    r2_filter: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_kind(self) -> JobCreate:
        if self.targets is not None:
            if self.service_id is not None or self.reference_panel_id is not None:
                raise ValueError(
                    "give either targets or service_id and reference_panel_id, not both"
                )
            if self.population is not None:
                raise ValueError("a federated job's population goes in each target")
        elif self.service_id is None or self.reference_panel_id is None:
            raise ValueError("give service_id and reference_panel_id, or targets")
        return self

    def federated_request(self) -> federated.FederatedRequest | None:
        """The federated job this body asks for; None when it asks for a single job."""
        if self.targets is None:
            return None
        return federated.FederatedRequest(
            name=self.name,
            description=self.description,
            targets=tuple(target.to_target() for target in self.targets),
            input_file_ids=tuple(self.input_file_ids),
            build=self.build.value,
            phasing=self.phasing.value if self.phasing is not None else None,
            mode=self.mode.value,
            r2_filter=self.r2_filter,
            notify_each=self.notify_each_target,
        )

    def to_request(self) -> create.JobRequest:
        if self.service_id is None or self.reference_panel_id is None:
            raise InvalidInput("this is a federated job: it has targets", field="targets")
        return create.JobRequest(
            name=self.name,
            description=self.description,
            service=self.service_id,
            reference_panel=self.reference_panel_id,
            input_file_ids=tuple(self.input_file_ids),
            build=self.build.value,
            phasing=self.phasing.value if self.phasing is not None else None,
            population=self.population,
            mode=self.mode.value,
            r2_filter=self.r2_filter,
        )


class ReportProblem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    severity: Severity
    code: str = Field(default="", max_length=64)
    message: str = Field(default="", max_length=2000)


class PreflightReport(BaseModel):
    """The figures of a client's own pre-flight report (`VcfReport.to_dict()`) that the
    job's checks read; other keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    samples: int = Field(ge=0, le=10**9)
    chromosomes: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list, max_length=MAX_REPORT_ITEMS
    )
    build: str | None = Field(default=None, max_length=16)
    build_source: str | None = Field(default=None, max_length=32)
    phased_share: float | None = Field(default=None, ge=0.0, le=1.0)
    problems: list[ReportProblem] = Field(default_factory=list, max_length=MAX_REPORT_ITEMS)


class PlannedInput(BaseModel):
    """A file not uploaded yet: its name, size in bytes and the client's own VCF report."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1, le=2**62)
    report: PreflightReport | None = Field(
        default=None, description="without it, only the file's size is checked"
    )


class JobCheck(JobCreate):
    """A job to check without creating it: POST /jobs's body, with files still to upload."""

    files: list[PlannedInput] = Field(
        default_factory=list,
        max_length=validation.MAX_INPUT_FILES,
        description="files to be uploaded; they come after input_file_ids",
    )

    def planned(self) -> tuple[create.PlannedFile, ...]:
        return tuple(
            create.PlannedFile(
                filename=item.filename,
                size=item.size,
                report=item.report.model_dump(mode="json") if item.report else None,
            )
            for item in self.files
        )


class CheckedInputPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str | None = Field(description="the stored file's id; null for a file still to upload")
    filename: str
    size: int


class JobCheckPublic(BaseModel):
    """The job POST /jobs would create from the same body, once the files are uploaded."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str
    service_id: str
    service_slug: str
    reference_panel_id: str
    reference_panel_slug: str
    build: str
    phasing: str
    population: str | None
    mode: str
    r2_filter: float | None
    input_files: list[CheckedInputPublic]


class FederatedCheckPublic(BaseModel):
    """The federated job POST /jobs would create: each target's job, in order."""

    name: str
    build: str
    mode: str
    targets: list[JobCheckPublic]


class InputFilePublic(BaseModel):
    id: str
    filename: str
    size: int


class JobErrorPublic(BaseModel):
    at: datetime | None
    message: str
    attempt: int | None
    transient: bool


class JobSummary(BaseModel):
    id: str
    user_id: str
    name: str
    description: str
    status: JobStatus
    progress_percentage: float
    service_id: str | None = Field(description="null for a federated job (see its children)")
    reference_panel_id: str | None
    parent_id: str | None = Field(
        description="the federated job this job is one target of; null for any other job"
    )
    federated: bool = Field(description="a federated job: its children run at the services")
    input_files: list[InputFilePublic]
    build: str
    phasing: str
    population: str | None
    mode: str
    r2_filter: float | None
    external_job_id: str | None
    error_message: str | None
    retry_of: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    execution_time_seconds: float | None = Field(
        description=(
            "wall-clock seconds from started_at (the hub first saw the job running) to "
            "completed_at (when it ended, whatever the outcome); while it is still active, "
            "to its last change (updated_at)"
        )
    )
    files_expired: bool = Field(
        description="retention removed some of the job's input or result files"
    )
    service_queue_position: int | None = Field(
        description="the job's place in the service's own queue while it waits there (1: next)"
    )
    service_deletes_results_at: datetime | None = Field(
        description=(
            "when the service deletes the job's results, once it has said (Michigan's "
            "deletedOn); results the hub has stored stay until the hub's own retention"
        )
    )


class SlotWaitPublic(BaseModel):
    """A job waiting in the hub for one of the account's slots at its service."""

    model_config = ConfigDict(from_attributes=True)

    in_use: int = Field(description="slots in use (or promised to the jobs ahead)")
    limit: int = Field(description="jobs the account may have at the service at once")
    place: int = Field(description="the job's place in line for the next free slot (1: next)")


class ChildPublic(BaseModel):
    """One target's job of a federated job."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    status: JobStatus
    progress_percentage: float = Field(validation_alias="progress")
    service_id: str | None
    reference_panel_id: str | None
    population: str | None
    phasing: str
    error_message: str | None
    retry_of: str | None
    replaced: bool = Field(
        default=False,
        description="retried: the job that retried it counts for the federated job instead",
    )


class JobPublic(JobSummary):
    errors: list[JobErrorPublic] = Field(description="the last errors met, oldest first")
    children: list[ChildPublic] | None = Field(
        default=None,
        description="a federated job's children (every attempt, oldest first); null otherwise",
    )
    summary: str | None = Field(
        default=None, description="a federated job: how its targets stand, e.g. '2 of 3 completed'"
    )
    slot_wait: SlotWaitPublic | None = Field(
        default=None,
        description=(
            "set while the job waits in the hub for a free slot at its service "
            "(GET /jobs/{id} only)"
        ),
    )


class JobPage(BaseModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int


class StatusUpdatePublic(BaseModel):
    status: JobStatus
    progress_percentage: float
    message: str
    created_at: datetime


class JobProgress(BaseModel):
    id: str
    status: JobStatus
    progress_percentage: float
    updated_at: datetime


class JobLogs(BaseModel):
    id: str
    logs: list[str] = Field(description="the service's own step messages")


class ResultFilePublic(BaseModel):
    id: str
    filename: str
    size: int
    sha256: str
    download_url: str


class JobStatsPublic(BaseModel):
    by_status: dict[str, int]
    total: int
    active: int
    completed: int
    failed: int
    cancelled: int
    success_rate: float | None = Field(description="completed / (completed + failed), 0-1")
    mean_execution_time_seconds: float | None


def _summary_fields(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "user_id": job.user_id,
        "name": job.name,
        "description": job.description,
        "status": job.status,
        "progress_percentage": job.progress,
        "service_id": job.service_id,
        "reference_panel_id": job.reference_panel_id,
        "parent_id": job.parent_id,
        "federated": federated.is_parent(job),
        "input_files": [
            InputFilePublic(id=item.file.id, filename=item.file.filename, size=item.file.size)
            for item in job.inputs
        ],
        "build": job.build,
        "phasing": job.phasing,
        "population": job.population,
        "mode": job.mode,
        "r2_filter": job.r2_filter,
        "external_job_id": job.external_job_id,
        "error_message": job.error_message,
        "retry_of": job.retry_of,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "execution_time_seconds": lifecycle.execution_time_seconds(job),
        "files_expired": job.files_expired_at is not None,
        "service_queue_position": job.service_queue_position,
        "service_deletes_results_at": job.service_deletes_results_at,
    }


def _error_entry(entry: Any) -> JobErrorPublic:
    data = entry if isinstance(entry, dict) else {"message": str(entry)}
    attempt = data.get("attempt")
    return JobErrorPublic(
        at=data.get("at"),
        message=str(data.get("message", "")),
        attempt=attempt if isinstance(attempt, int) else None,
        transient=bool(data.get("transient", False)),
    )


def job_public(
    job: Job, *, slot_wait: SlotWait | None = None, children: Sequence[Job] | None = None
) -> JobPublic:
    """The job's public view; a federated job's with its `children` (all of them)."""
    current = {c.id for c in federated.current_children(children)} if children else set()
    return JobPublic(
        **_summary_fields(job),
        errors=[_error_entry(e) for e in job.error_log or []],
        slot_wait=None if slot_wait is None else SlotWaitPublic.model_validate(slot_wait),
        children=None
        if children is None
        else [
            ChildPublic.model_validate(child).model_copy(
                update={"replaced": child.id not in current}
            )
            for child in children
        ],
        summary=federated.summary(children) if children else None,
    )


def job_summary(job: Job) -> JobSummary:
    return JobSummary(**_summary_fields(job))

"""POST /jobs/compatibility: which services and panels my uploaded files fit, and why not.

Included by api/jobs.py's router, so it is at /api/v1/jobs/compatibility and, for the
pages, at /app/api/v1/jobs/compatibility.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from imputehub.api.deps import CurrentUser, SessionDep
from imputehub.domain.jobs import JobMode, Phasing
from imputehub.jobs import compatibility, validation

router = APIRouter()


class CompatibilityCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_file_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=validation.MAX_INPUT_FILES
    )
    phasing: Phasing | None = Field(
        default=None, description="the phasing the job would ask for; null: not judged yet"
    )
    mode: JobMode = JobMode.IMPUTATION


class VerdictPublic(BaseModel):
    service_id: str
    service_slug: str
    service_name: str
    panel_id: str
    panel_slug: str
    panel_name: str
    build: str
    fits: bool
    reasons: list[str] = Field(description="why a job with this panel would be refused")


class FileFitPublic(BaseModel):
    file_id: str
    filename: str
    size: int
    validation: dict[str, Any] | None = Field(description="the file's pre-flight VCF report")
    fixes: dict[str, str] = Field(
        description="what to do about the report's problems, by problem code"
    )
    candidates: list[VerdictPublic]


class CompatibilityPublic(BaseModel):
    files: list[FileFitPublic]


@router.post("/compatibility", response_model=CompatibilityPublic)
async def file_compatibility(
    body: CompatibilityCheck, session: SessionDep, user: CurrentUser
) -> CompatibilityPublic:
    """Each of my files (by id) against every panel on offer now: `fits`, or the
    `reasons` a job would be refused (build, chromosome naming, sample limits, file
    size, phasing, panel access), before anything is submitted. Writes nothing.

    Advisory, like POST /jobs/check: POST /jobs checks everything again. Another user's
    file is "not found" (422 naming the id, as POST /jobs answers).
    """
    fits = await compatibility.file_fits(
        session,
        user,
        body.input_file_ids,
        phasing=body.phasing.value if body.phasing is not None else None,
        mode=body.mode.value,
    )
    return CompatibilityPublic(
        files=[
            FileFitPublic(
                file_id=fit.file.id,
                filename=fit.file.filename,
                size=fit.file.size,
                validation=fit.file.validation,
                fixes=fit.fixes,
                candidates=[
                    VerdictPublic(
                        service_id=v.service.id,
                        service_slug=v.service.slug,
                        service_name=v.service.name,
                        panel_id=v.panel.id,
                        panel_slug=v.panel.slug,
                        panel_name=v.panel.display_name,
                        build=v.panel.build,
                        fits=v.fits,
                        reasons=list(v.reasons),
                    )
                    for v in fit.verdicts
                ],
            )
            for fit in fits
        ]
    )

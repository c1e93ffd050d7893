"""New job: files (resumable uploads), their pre-flight reports, service, panel, submit.

The page arrives with the catalogue (services and their panels), my earlier uploads and,
for `?like=<job id>`, a past job's settings. Everything after that happens in the browser
through the pages' JSON door (/app/api/v1): the resumable upload routes
(static/js/upload.js), POST /jobs/compatibility for each file's report and fit, and POST
/jobs to submit (static/js/new_job.js).

"Send to several services" makes it a federated job: the same files sent to each of up to
IMPUTEHUB_MAX_TARGETS_PER_JOB targets (service, panel, population), posted as `targets`;
the hub checks all of them first and a refusal names each bad target next to its row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from imputehub.api.deps import RuntimeDep, SessionDep
from imputehub.db.models import ReferencePanel, Service
from imputehub.domain.jobs import JobMode, Phasing
from imputehub.files import records
from imputehub.jobs import compatibility, reuse
from imputehub.registry import rules
from imputehub.web.session_auth import SignedIn
from imputehub.web.templating import render

router = APIRouter(include_in_schema=False)

EARLIER_FILES_SHOWN = 50
PHASING_LABELS = {
    Phasing.EAGLE.value: "Eagle",
    Phasing.BEAGLE.value: "Beagle",
    Phasing.SHAPEIT.value: "SHAPEIT",
    Phasing.NO_PHASING.value: "No phasing (my data is phased already)",
}


@dataclass(frozen=True, kw_only=True)
class PanelChoice:
    id: str
    slug: str
    name: str
    build: str
    populations: list[str]
    sample_count: int | None
    variant_count: int | None
    description: str


@dataclass(frozen=True, kw_only=True)
class ServiceChoice:
    id: str
    slug: str
    name: str
    api_type: str
    description: str
    location: str
    health_status: str
    health_message: str | None
    queue_size: int | None
    supported_builds: list[str]
    max_upload_size: int | None
    phasing: list[str]  # offered; empty: not known, any
    r2_filters: list[float]  # offered; empty: not known, any
    panels: list[PanelChoice] = field(default_factory=list)


def catalogue(pairs: list[tuple[Service, ReferencePanel]]) -> list[ServiceChoice]:
    """The services on offer, each with its panels, as the page shows them."""
    by_service: dict[str, ServiceChoice] = {}
    for service, panel in pairs:
        choice = by_service.get(service.id)
        if choice is None:
            config = service.api_config or {}
            choice = by_service[service.id] = ServiceChoice(
                id=service.id,
                slug=service.slug,
                name=service.name,
                api_type=service.api_type,
                description=service.description,
                location=service.location,
                health_status=service.health_status,
                health_message=service.health_message,
                queue_size=service.queue_size,
                supported_builds=list(service.supported_builds or []),
                max_upload_size=service.max_upload_size,
                phasing=list(rules.offered_phasing(config)),
                r2_filters=list(rules.offered_r2_filters(config)),
            )
        choice.panels.append(
            PanelChoice(
                id=panel.id,
                slug=panel.slug,
                name=panel.display_name,
                build=panel.build,
                populations=[str(p) for p in panel.populations or []],
                sample_count=panel.sample_count,
                variant_count=panel.variant_count,
                description=panel.description,
            )
        )
    return list(by_service.values())


@router.get("/jobs/new")
async def new_job_form(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    opened: SignedIn,
    like: Annotated[str | None, Query(max_length=64)] = None,
    mode: Annotated[JobMode | None, Query()] = None,
) -> Response:
    user = opened.user
    offered = catalogue(await compatibility.candidates(session, user))
    earlier = await records.list_files(session, user, limit=EARLIER_FILES_SHOWN)
    inputs = [f for f in earlier.items if f.kind == "input"]
    start: dict[str, Any] | None = None
    if like:
        settings = await reuse.settings_like(
            session, user, like, mode=mode.value if mode is not None else None
        )
        start = asdict(settings)
    elif mode is not None:
        start = {"mode": mode.value}
    return render(
        request,
        "new_job.html",
        {
            "catalogue": offered,
            "catalogue_data": [asdict(s) for s in offered],
            "max_targets": runtime.settings.max_targets_per_job,
            "earlier_files": inputs,
            "start": start,
            "phasing_labels": PHASING_LABELS,
            "modes": [m.value for m in JobMode],
        },
        opened=opened,
    )

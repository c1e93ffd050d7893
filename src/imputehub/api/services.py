"""Services: discovery for users; registration, edits and health checks for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.api.admin import request_origin
from imputehub.api.deps import AdminUser, CurrentUser, Now, RuntimeDep, SessionDep
from imputehub.db.models import Service, ServiceHealthCheck
from imputehub.operations import maintenance
from imputehub.registry import health, panel_sync, rules, service_console, services
from imputehub.registry.health import HealthCheckResult

router = APIRouter(prefix="/services", tags=["services"])

ApiType = Literal["michigan", "ga4gh_wes", "dnastack", "local"]
BuildName = Literal["hg19", "hg38"]
Name = Annotated[str, Field(min_length=1, max_length=services.MAX_NAME_LENGTH)]
Slug = Annotated[str, Field(min_length=1, max_length=rules.MAX_SLUG_LENGTH)]
BaseUrl = Annotated[str, Field(min_length=1, max_length=rules.MAX_URL_LENGTH)]
Description = Annotated[str, Field(max_length=services.MAX_DESCRIPTION_LENGTH)]
Location = Annotated[str, Field(max_length=services.MAX_LOCATION_LENGTH)]
Builds = Annotated[list[BuildName], Field(max_length=10)]
UploadSize = Annotated[int, Field(gt=0, le=services.MAX_UPLOAD_SIZE)]
TimeLimit = Annotated[float, Field(gt=0, le=services.MAX_JOB_TIME_LIMIT_SECONDS)]
Credential = Annotated[
    str,
    Field(
        min_length=1,
        max_length=rules.MAX_CREDENTIAL_LENGTH,
        description="write-only: stored encrypted, never returned",
    ),
]


class ServiceCreate(BaseModel):
    # strict: "123" is not a number and "yes" is not a boolean here.
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    slug: Slug | None = Field(default=None, description="derived from the name when omitted")
    api_type: ApiType
    base_url: BaseUrl
    description: Description = ""
    location: Location = ""
    supported_builds: Builds = Field(default_factory=list)
    max_upload_size: UploadSize | None = None
    api_config: dict[str, Any] = Field(
        default_factory=dict, description="non-secret settings; secrets go in credential"
    )
    credential: Credential | None = None
    job_time_limit_seconds: TimeLimit | None = None
    is_active: bool = True


class ServiceUpdate(BaseModel):
    """Only the fields sent change; `"credential": null` clears the credential."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name | None = None
    slug: Slug | None = None
    api_type: ApiType | None = None
    base_url: BaseUrl | None = None
    description: Description | None = None
    location: Location | None = None
    supported_builds: Builds | None = None
    max_upload_size: UploadSize | None = None
    api_config: dict[str, Any] | None = None
    credential: Credential | None = None
    job_time_limit_seconds: TimeLimit | None = None
    is_active: bool | None = None


class ServicePublic(BaseModel):
    id: str
    name: str
    slug: str
    api_type: str
    base_url: str
    description: str
    location: str
    supported_builds: list[str]
    max_upload_size: int | None
    api_config: dict[str, Any]
    job_time_limit_seconds: float | None
    is_active: bool
    is_paused: bool = Field(description="paused by an admin: new jobs wait in the hub")
    credential_set: bool = Field(description="whether a platform credential is stored")
    health_status: str
    health_message: str | None
    response_time_ms: float | None
    queue_size: int | None = Field(
        description="jobs waiting in the service's own queue at the last health check "
        "(Michigan-type servers tell; null: unknown)"
    )
    last_checked_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, service: Service) -> ServicePublic:
        return cls(
            id=service.id,
            name=service.name,
            slug=service.slug,
            api_type=service.api_type,
            base_url=service.base_url,
            description=service.description,
            location=service.location,
            supported_builds=list(service.supported_builds or []),
            max_upload_size=service.max_upload_size,
            api_config=dict(service.api_config or {}),
            job_time_limit_seconds=service.job_time_limit_seconds,
            is_active=service.is_active,
            is_paused=service.is_paused,
            credential_set=service.credential_encrypted is not None,
            health_status=service.health_status,
            health_message=service.health_message,
            response_time_ms=service.response_time_ms,
            queue_size=service.queue_size,
            last_checked_at=service.last_checked_at,
            created_at=service.created_at,
            updated_at=service.updated_at,
        )


class HealthCheckPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    service_id: str
    checked_at: datetime
    status: str
    response_time_ms: float | None
    message: str | None
    queue_size: int | None = None


@router.get("", response_model=list[ServicePublic])
async def list_services(
    session: SessionDep,
    user: CurrentUser,
    all_: Annotated[
        bool, Query(alias="all", description="admins: include inactive and unhealthy")
    ] = False,
) -> list[ServicePublic]:
    found = await services.list_services(session, user, include_all=all_)
    return [ServicePublic.of(s) for s in found]


@router.post("", response_model=ServicePublic, status_code=status.HTTP_201_CREATED)
async def create_service(
    body: ServiceCreate,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    admin: AdminUser,
    now: Now,
) -> ServicePublic:
    data = services.ServiceInput(**body.model_dump())
    service = await service_console.register(
        session,
        runtime.vault,
        admin,
        data,
        fields=body.model_fields_set,
        origin=request_origin(request),
        now=now,
    )
    return ServicePublic.of(service)


@router.get("/{ref}", response_model=ServicePublic)
async def get_service(ref: str, session: SessionDep, user: CurrentUser) -> ServicePublic:
    return ServicePublic.of(await services.get_service(session, user, ref))


@router.patch("/{ref}", response_model=ServicePublic)
async def update_service(
    ref: str,
    body: ServiceUpdate,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    admin: AdminUser,
    now: Now,
) -> ServicePublic:
    changes = body.model_dump(exclude_unset=True)
    service = await service_console.edit(
        session, runtime.vault, admin, ref, changes, origin=request_origin(request), now=now
    )
    return ServicePublic.of(service)


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
async def deactivate_service(
    ref: str, request: Request, session: SessionDep, admin: AdminUser, now: Now
) -> Response:
    await service_console.deactivate(session, admin, ref, origin=request_origin(request), now=now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{ref}/pause",
    response_model=ServicePublic,
    summary="Pause a service: new jobs for it wait in the hub until it is resumed",
)
async def pause_service(
    ref: str, request: Request, runtime: RuntimeDep, session: SessionDep, admin: AdminUser, now: Now
) -> ServicePublic:
    service = await services.get_service(session, admin, ref)
    await maintenance.set_paused(
        session, admin, service, True, origin=request_origin(request), now=now
    )
    return ServicePublic.of(service)


@router.post("/{ref}/resume", response_model=ServicePublic, summary="Resume a paused service")
async def resume_service(
    ref: str, request: Request, runtime: RuntimeDep, session: SessionDep, admin: AdminUser, now: Now
) -> ServicePublic:
    service = await services.get_service(session, admin, ref)
    await maintenance.set_paused(
        session, admin, service, False, origin=request_origin(request), now=now
    )
    runtime.wake_workers()
    return ServicePublic.of(service)


@router.post("/{ref}/health-check", response_model=HealthCheckPublic)
async def check_service(ref: str, runtime: RuntimeDep, admin: AdminUser) -> HealthCheckPublic:
    result: HealthCheckResult = await health.run_health_check(runtime, ref)
    return HealthCheckPublic.model_validate(result)


class PanelSyncPublic(BaseModel):
    service_id: str
    added: list[str] = Field(description="slugs of panels new to the hub")
    updated: list[str]
    deactivated: list[str] = Field(description="panels the service no longer lists")
    skipped: list[str] = Field(description="panels the hub could not take, with why")


@router.post("/{ref}/sync-panels", response_model=PanelSyncPublic)
async def sync_service_panels(ref: str, runtime: RuntimeDep, admin: AdminUser) -> PanelSyncPublic:
    """Mirror the panels the service offers (admins)."""
    result = await panel_sync.sync_panels(runtime, admin, ref)
    return PanelSyncPublic.model_validate(result, from_attributes=True)


@router.get("/{ref}/health-history", response_model=list[HealthCheckPublic])
async def health_history(
    ref: str,
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=services.MAX_HISTORY_LIMIT)] = 50,
) -> list[HealthCheckPublic]:
    rows: list[ServiceHealthCheck] = await services.health_history(session, user, ref, limit=limit)
    return [HealthCheckPublic.model_validate(row) for row in rows]

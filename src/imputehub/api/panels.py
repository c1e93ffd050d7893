"""Reference panels: listing for users; registration and edits for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.api.admin import request_origin
from imputehub.api.deps import AdminUser, CurrentUser, Now, SessionDep
from imputehub.registry import panels, rules

router = APIRouter(prefix="/reference-panels", tags=["reference panels"])

BuildName = Literal["hg19", "hg38"]
PanelId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=panels.MAX_PANEL_ID_LENGTH,
        description="the service's own id for the panel, e.g. apps@1000g-phase-3-v5@2.0.0",
    ),
]
DisplayName = Annotated[str, Field(min_length=1, max_length=panels.MAX_DISPLAY_NAME_LENGTH)]
Slug = Annotated[str, Field(min_length=1, max_length=rules.MAX_SLUG_LENGTH)]
Population = Annotated[str, Field(min_length=1, max_length=rules.MAX_POPULATION_LENGTH)]
Populations = Annotated[list[Population], Field(max_length=rules.MAX_POPULATIONS)]
SampleCount = Annotated[int, Field(ge=0, le=panels.MAX_SAMPLE_COUNT)]
VariantCount = Annotated[int, Field(ge=0, le=panels.MAX_VARIANT_COUNT)]
Description = Annotated[str, Field(max_length=panels.MAX_DESCRIPTION_LENGTH)]


class PanelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    service_id: str = Field(min_length=1, max_length=100, description="service id or slug")
    panel_id: PanelId
    display_name: DisplayName
    slug: Slug | None = Field(
        default=None, description="derived from the service slug and display name when omitted"
    )
    build: BuildName
    populations: Populations = Field(default_factory=list)
    sample_count: SampleCount | None = None
    variant_count: VariantCount | None = None
    description: Description = ""
    is_active: bool = True


class PanelUpdate(BaseModel):
    """Only the fields sent change. A panel stays with its service."""

    model_config = ConfigDict(extra="forbid", strict=True)

    panel_id: PanelId | None = None
    display_name: DisplayName | None = None
    slug: Slug | None = None
    build: BuildName | None = None
    populations: Populations | None = None
    sample_count: SampleCount | None = None
    variant_count: VariantCount | None = None
    description: Description | None = None
    is_active: bool | None = None


class PanelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    service_id: str
    panel_id: str
    display_name: str
    slug: str
    build: str
    populations: list[str]
    sample_count: int | None
    variant_count: int | None
    contigs: list[str] = Field(
        description="chromosome names as the panel writes them (e.g. 20 or chr20); "
        "empty when unknown (known for panels of the local engine)"
    )
    description: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


@router.get("", response_model=list[PanelPublic])
async def list_panels(
    session: SessionDep,
    user: CurrentUser,
    service_id: Annotated[str | None, Query(max_length=100, description="id or slug")] = None,
    build: BuildName | None = None,
    population: Annotated[str | None, Query(max_length=rules.MAX_POPULATION_LENGTH)] = None,
    all_: Annotated[bool, Query(alias="all", description="admins: include inactive")] = False,
) -> list[PanelPublic]:
    found = await panels.list_panels(
        session,
        user,
        service=service_id,
        build=build,
        population=population,
        include_all=all_,
    )
    return [PanelPublic.model_validate(p) for p in found]


@router.post("", response_model=PanelPublic, status_code=status.HTTP_201_CREATED)
async def create_panel(
    body: PanelCreate, request: Request, session: SessionDep, admin: AdminUser, now: Now
) -> PanelPublic:
    data = panels.PanelInput(service=body.service_id, **body.model_dump(exclude={"service_id"}))
    made = await panels.create_panel(session, admin, data, now=now, origin=request_origin(request))
    return PanelPublic.model_validate(made)


@router.get("/{ref}", response_model=PanelPublic)
async def get_panel(
    ref: str,
    session: SessionDep,
    user: CurrentUser,
    service_id: Annotated[
        str | None,
        Query(max_length=100, description="id or slug: whose panel a service panel id means"),
    ] = None,
) -> PanelPublic:
    """A panel by the hub's id or slug, or by the service's own panel id."""
    return PanelPublic.model_validate(
        await panels.get_panel(session, user, ref, service=service_id)
    )


@router.patch("/{ref}", response_model=PanelPublic)
async def update_panel(
    ref: str, body: PanelUpdate, request: Request, session: SessionDep, admin: AdminUser, now: Now
) -> PanelPublic:
    changes = body.model_dump(exclude_unset=True)
    return PanelPublic.model_validate(
        await panels.update_panel(
            session, admin, ref, changes, now=now, origin=request_origin(request)
        )
    )


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
async def deactivate_panel(
    ref: str, request: Request, session: SessionDep, admin: AdminUser, now: Now
) -> Response:
    await panels.deactivate_panel(session, admin, ref, now=now, origin=request_origin(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Admin monitoring: GET /admin/stats and /admin/audit-log (under /api/v1), GET /metrics."""

from __future__ import annotations

import hmac
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import api_tokens
from imputehub.accounts.users import require_admin
from imputehub.api.deps import AdminUser, Now, Offset, RuntimeDep, SessionDep
from imputehub.domain.errors import AuthenticationRequired, InvalidInput
from imputehub.monitoring import audit, client_address, metrics, stats
from imputehub.operations import hub_settings, maintenance
from imputehub.operations.hub_settings import HeldOrRefused, SignupMode
from imputehub.runtime import Runtime

router = APIRouter(prefix="/admin", tags=["admin"])
metrics_router = APIRouter(tags=["monitoring"])


class WindowPublic(BaseModel):
    submitted: int
    completed: int
    failed: int
    cancelled: int
    processing_rate_per_hour: float
    failure_rate: float | None


class ScopePublic(BaseModel):
    by_status: dict[str, int]
    windows: dict[str, WindowPublic]


class AdminStats(ScopePublic):
    generated_at: datetime
    services: dict[str, ScopePublic]


class AuditEntryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    actor_id: str | None
    actor: str
    action: str
    target_type: str
    target_id: str
    outcome: str
    client_ip: str
    request_id: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntryPublic]
    total: int
    limit: int
    offset: int


class HubSettingsPublic(BaseModel):
    """Settings admins change here, kept in the database (never a secret)."""

    signup_mode: SignupMode
    signup_domains: list[str]
    maintenance: bool
    maintenance_message: str
    maintenance_new_jobs: HeldOrRefused


class HubSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signup_mode: SignupMode | None = None
    signup_domains: list[str] | None = Field(default=None, max_length=hub_settings.MAX_DOMAINS)
    maintenance: bool | None = None
    maintenance_message: str | None = Field(default=None, max_length=hub_settings.MAX_MESSAGE)
    maintenance_new_jobs: HeldOrRefused | None = None


def request_origin(request: Request) -> audit.Origin:
    """The caller's address (behind trusted proxies, the client's) and request id, for
    audit entries and the login throttle."""
    runtime: Runtime = request.app.state.runtime
    trusted = runtime.settings.trusted_proxy_networks
    return audit.origin_of(client_address.of_scope(request.scope, trusted))


def _scope(scope: stats.Scope) -> ScopePublic:
    return ScopePublic(
        by_status=scope.by_status,
        windows={k: WindowPublic(**asdict(w)) for k, w in scope.windows.items()},
    )


@router.get("/stats", response_model=AdminStats)
async def admin_stats(session: SessionDep, admin: AdminUser, now: Now) -> AdminStats:
    everyone, per_service = await stats.admin_stats(session, now)
    base = _scope(everyone)
    return AdminStats(
        generated_at=now,
        by_status=base.by_status,
        windows=base.windows,
        services={slug: _scope(scope) for slug, scope in per_service.items()},
    )


@router.get("/audit-log", response_model=AuditPage)
async def audit_log(
    session: SessionDep,
    admin: AdminUser,
    action: str | None = None,
    actor: Annotated[str | None, Query(description="a username or user id")] = None,
    target: Annotated[str | None, Query(description="a target id, or type:id")] = None,
    outcome: Annotated[str | None, Query(pattern="^(success|failure|denied)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> AuditPage:
    query = audit.AuditQuery(
        action=action,
        actor=actor,
        target=target,
        outcome=outcome,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    entries, total = await audit.search(session, query)
    return AuditPage(
        items=[AuditEntryPublic.model_validate(e) for e in entries],
        total=total,
        limit=limit,
        offset=offset,
    )


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}}},
    summary="Prometheus metrics (bearer METRICS_TOKEN or an admin's token)",
)
async def prometheus_metrics(
    request: Request, runtime: RuntimeDep, session: SessionDep, now: Now
) -> Response:
    await _allow_scrape(request, runtime, session, now)
    return Response(await metrics.render(session, now), media_type=metrics.CONTENT_TYPE)


async def _allow_scrape(
    request: Request, runtime: Runtime, session: AsyncSession, now: datetime
) -> None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise AuthenticationRequired("send 'Authorization: Bearer <metrics or admin token>'")
    configured = runtime.settings.metrics_token
    if configured is not None and hmac.compare_digest(
        credential.encode(), configured.get_secret_value().encode()
    ):
        return
    user = await api_tokens.resolve_bearer(
        session, credential, secret_key=runtime.secret_key, now=now
    )
    require_admin(user)


@router.get(
    "/settings", response_model=HubSettingsPublic, summary="The hub's settings kept in the database"
)
async def get_settings(session: SessionDep, admin: AdminUser) -> HubSettingsPublic:
    return HubSettingsPublic.model_validate((await hub_settings.load(session)).model_dump())


@router.patch(
    "/settings",
    response_model=HubSettingsPublic,
    summary="Change sign-up mode, allowed domains or maintenance mode (audited)",
)
async def change_settings(
    body: HubSettingsUpdate, request: Request, session: SessionDep, admin: AdminUser, now: Now
) -> HubSettingsPublic:
    changes = body.model_dump(exclude_unset=True)
    if any(value is None for value in changes.values()):
        raise InvalidInput("a setting cannot be null; leave it out to keep it")
    after = await maintenance.change_settings(
        session, admin, changes, origin=request_origin(request), now=now
    )
    request.app.state.runtime.wake_workers()
    return HubSettingsPublic.model_validate(after.model_dump())

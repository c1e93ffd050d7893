"""Service credentials: a user's own per service, and (admins, `?scope=platform`) the platform's.

The secret is write-only: responses say whether one is set, its last four characters (long
ones only), the latest verification and the expiry, and for services that list panels by
account, how the panels your own credential sees differ from the hub's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.api.admin import request_origin
from imputehub.api.deps import CurrentUser, Now, RuntimeDep, SessionDep
from imputehub.registry import user_credentials
from imputehub.registry.user_credentials import CredentialStatus

router = APIRouter(prefix="/services", tags=["credentials"])

ScopeQuery = Annotated[
    Literal["user", "platform"],
    Query(description="user: your own credential; platform: the hub's (admins only)"),
]


class CredentialSet(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # Characters here; the byte limit (4 KiB of UTF-8) is checked by the use case.
    credential: str = Field(
        min_length=1,
        max_length=user_credentials.MAX_CREDENTIAL_BYTES,
        description="write-only: stored encrypted, never returned",
    )


class CredentialStatusPublic(BaseModel):
    service_id: str
    scope: Literal["user", "platform"]
    set: bool
    last_four: str | None = Field(description="the secret's last four characters, if long")
    verified: bool | None = Field(description="null: not checked, or the service cannot tell")
    verified_at: datetime | None
    expires_at: datetime | None
    expires_soon: bool = Field(description="expires within 7 days, or has expired")
    message: str | None
    updated_at: datetime | None
    panels_missing: list[str] | None = Field(
        default=None,
        description="the hub's panels of this service your own credential does not see "
        "(service panel ids); null: not known",
    )
    panels_extra: list[str] | None = Field(
        default=None, description="panels your own credential sees that the hub does not offer"
    )
    panels_message: str | None = Field(
        default=None, description="the difference in one sentence; null when there is none"
    )

    @classmethod
    def of(cls, found: CredentialStatus) -> CredentialStatusPublic:
        return cls(
            service_id=found.service_id,
            scope=found.scope,
            set=found.set,
            last_four=found.last_four,
            verified=found.verified,
            verified_at=found.verified_at,
            expires_at=found.expires_at,
            expires_soon=found.expires_soon,
            message=found.message,
            updated_at=found.updated_at,
            panels_missing=_listed(found.panels_missing),
            panels_extra=_listed(found.panels_extra),
            panels_message=found.panels_message,
        )


def _listed(ids: tuple[str, ...] | None) -> list[str] | None:
    return None if ids is None else list(ids)


@router.put("/{ref}/credential", response_model=CredentialStatusPublic)
async def set_credential(
    ref: str,
    body: CredentialSet,
    request: Request,
    runtime: RuntimeDep,
    user: CurrentUser,
    now: Now,
    scope: ScopeQuery = "user",
) -> CredentialStatusPublic:
    found = await user_credentials.store(
        runtime,
        user,
        ref,
        body.credential,
        scope=scope,
        origin=request_origin(request),
        now=now,
    )
    return CredentialStatusPublic.of(found)


@router.get("/{ref}/credential", response_model=CredentialStatusPublic)
async def get_credential(
    ref: str, session: SessionDep, user: CurrentUser, now: Now, scope: ScopeQuery = "user"
) -> CredentialStatusPublic:
    found = await user_credentials.get_status(session, user, ref, scope=scope, now=now)
    return CredentialStatusPublic.of(found)


@router.delete("/{ref}/credential", status_code=status.HTTP_204_NO_CONTENT)
async def delete_credential(
    ref: str,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    user: CurrentUser,
    now: Now,
    scope: ScopeQuery = "user",
) -> Response:
    await user_credentials.remove(
        session, runtime.vault, user, ref, scope=scope, origin=request_origin(request), now=now
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{ref}/credential/verify", response_model=CredentialStatusPublic)
async def verify_credential(
    ref: str, runtime: RuntimeDep, user: CurrentUser, scope: ScopeQuery = "user"
) -> CredentialStatusPublic:
    found = await user_credentials.verify(runtime, user, ref, scope=scope)
    return CredentialStatusPublic.of(found)

"""Log in, who am I, change password, personal API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.accounts import api_tokens, throttle, tokens, users
from imputehub.api.admin import request_origin
from imputehub.api.deps import CurrentUser, Now, RuntimeDep, SessionDep
from imputehub.api.users import UserPublic
from imputehub.domain.errors import ImputehubError
from imputehub.monitoring import audit
from imputehub.runtime import Runtime

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int
    user: UserPublic


class ChangePasswordRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=api_tokens.MAX_TOKEN_DAYS)


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="the token itself; shown only in this response")


def _throttle_policy(runtime: Runtime) -> throttle.Policy:
    settings = runtime.settings
    return throttle.Policy(
        free_failures=settings.login_max_failures,
        max_seconds=settings.login_backoff_max_seconds,
    )


@router.post("/login", response_model=LoginResponse)
async def login(
    body: LoginRequest, request: Request, runtime: RuntimeDep, now: Now
) -> LoginResponse:
    settings = runtime.settings
    origin = request_origin(request)
    try:
        user = await users.authenticate(
            runtime.db,
            username=body.username,
            password=body.password,
            address=origin.client_ip,
            now=now,
            policy=_throttle_policy(runtime),
        )
    except ImputehubError as exc:
        # Its own transaction: authenticate's has ended (and the error rolls back ours).
        await audit.record_alone(
            runtime.db,
            action="login",
            actor=body.username,
            now=now,
            target_type="user",
            target_id=body.username,
            outcome="failure",
            origin=origin,
            details={"reason": exc.code},
        )
        raise
    await audit.record_alone(
        runtime.db,
        action="login",
        actor=user,
        now=now,
        target_type="user",
        target_id=user.id,
        origin=origin,
    )
    token = tokens.issue_access_token(
        user_id=user.id,
        token_version=user.token_version,
        secret_key=runtime.secret_key,
        now=now,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    return LoginResponse(
        access_token=token,
        expires_in=settings.access_token_ttl_seconds,
        user=UserPublic.model_validate(user),
    )


@router.get("/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.post("/change-password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: ChangePasswordRequest,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    user: CurrentUser,
    now: Now,
) -> Response:
    fields = {"action": "password_changed", "now": now, "target_type": "user"}
    origin = request_origin(request)
    try:
        await users.check_current_password(
            runtime.db,
            user,
            body.current_password,
            address=origin.client_ip,
            now=now,
            policy=_throttle_policy(runtime),
        )
        await users.change_password(session, user, new_password=body.new_password, now=now)
    except ImputehubError as exc:
        # Its own transaction: the error rolls back the request's.
        await audit.record_alone(
            runtime.db,
            **fields,
            actor=user,
            target_id=user.id,
            outcome="failure",
            origin=origin,
            details={"reason": exc.code},
        )
        raise
    await audit.record(session, **fields, actor=user, target_id=user.id, origin=origin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
async def create_token(
    body: TokenCreate,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    user: CurrentUser,
    now: Now,
) -> TokenCreated:
    created = await api_tokens.create_token(
        session,
        user,
        name=body.name,
        expires_in_days=body.expires_in_days,
        max_tokens=runtime.settings.max_api_tokens_per_user,
        now=now,
    )
    await audit.record(
        session,
        action="token_created",
        actor=user,
        now=now,
        target_type="api_token",
        target_id=created.record.id,
        origin=request_origin(request),
        details={"name": body.name},
    )
    public = TokenPublic.model_validate(created.record)
    return TokenCreated(**public.model_dump(), token=created.token)


@router.get("/tokens", response_model=list[TokenPublic])
async def list_tokens(session: SessionDep, user: CurrentUser) -> list[TokenPublic]:
    return [TokenPublic.model_validate(t) for t in await api_tokens.list_tokens(session, user)]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_token(
    token_id: str, request: Request, session: SessionDep, user: CurrentUser, now: Now
) -> Response:
    await api_tokens.delete_token(session, user, token_id)
    await audit.record(
        session,
        action="token_revoked",
        actor=user,
        now=now,
        target_type="api_token",
        target_id=token_id,
        origin=request_origin(request),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Log in, who am I, change password, personal API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.accounts import api_tokens, self_service, throttle, tokens
from imputehub.api.admin import request_origin
from imputehub.api.deps import CurrentUser, Now, RuntimeDep, SessionDep
from imputehub.api.users import UserPublic
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


def throttle_policy(runtime: Runtime) -> throttle.Policy:
    settings = runtime.settings
    return self_service.login_policy(
        settings.login_max_failures, settings.login_backoff_max_seconds
    )


@router.post("/login", response_model=LoginResponse)
async def login(
    body: LoginRequest, request: Request, runtime: RuntimeDep, now: Now
) -> LoginResponse:
    settings = runtime.settings
    user = await self_service.log_in(
        runtime.db,
        username=body.username,
        password=body.password,
        origin=request_origin(request),
        now=now,
        policy=throttle_policy(runtime),
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


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, description="where the hub's mails go; empty: none")


@router.patch("/me", response_model=UserPublic, summary="Change your own e-mail address")
async def update_me(
    body: ProfileUpdate, request: Request, session: SessionDep, user: CurrentUser, now: Now
) -> UserPublic:
    await self_service.change_email(
        session, user, email=body.email, origin=request_origin(request), now=now
    )
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
    await self_service.change_password(
        runtime.db,
        session,
        user,
        current_password=body.current_password,
        new_password=body.new_password,
        origin=request_origin(request),
        now=now,
        policy=throttle_policy(runtime),
    )
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
    created = await self_service.create_token(
        session,
        user,
        name=body.name,
        expires_in_days=body.expires_in_days,
        max_tokens=runtime.settings.max_api_tokens_per_user,
        origin=request_origin(request),
        now=now,
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
    await self_service.revoke_token(
        session, user, token_id, origin=request_origin(request), now=now
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Users: admins list, create and edit accounts."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.accounts import administration, users
from imputehub.api.admin import request_origin
from imputehub.api.deps import AdminUser, Now, SessionDep

router = APIRouter(prefix="/users", tags=["users"])


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    email: str | None
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    email: str | None = Field(default=None, max_length=254)
    role: str = "user"


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=254)
    role: str | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)


@router.get("", response_model=list[UserPublic])
async def list_users(session: SessionDep, admin: AdminUser) -> list[UserPublic]:
    return [UserPublic.model_validate(u) for u in await users.list_users(session, admin)]


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
async def create_user(
    body: UserCreate, request: Request, session: SessionDep, admin: AdminUser, now: Now
) -> UserPublic:
    user = await administration.create_account(
        session,
        admin,
        username=body.username,
        password=body.password,
        email=body.email,
        role=body.role,
        origin=request_origin(request),
        now=now,
    )
    return UserPublic.model_validate(user)


@router.patch("/{user_id}", response_model=UserPublic)
async def update_user(
    user_id: str,
    body: UserUpdate,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    now: Now,
) -> UserPublic:
    user = await administration.update_account(
        session,
        admin,
        user_id,
        now=now,
        origin=request_origin(request),
        fields_set=frozenset(body.model_fields_set),
        email=body.email,
        role=body.role,
        is_active=body.is_active,
        password=body.password,
    )
    return UserPublic.model_validate(user)

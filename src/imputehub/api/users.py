"""Users: admins list, create and edit accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.accounts import administration, life_cycle, users
from imputehub.accounts.account_mail import mail_later
from imputehub.api.admin import request_origin
from imputehub.api.deps import AdminUser, Now, Offset, RuntimeDep, SessionDep

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


class UserAdminView(UserPublic):
    """An account as admins see it: with where its sign-up or deletion stands."""

    signup_status: str | None = Field(
        default=None,
        description="a sign-up on its way in: 'unverified' (address not confirmed yet) or "
        "'pending' (waiting for an admin); null: a full account",
    )
    email_verified_at: datetime | None = None
    deletion_requested_at: datetime | None = Field(
        default=None, description="set while the account is being deleted"
    )


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


@router.get("", response_model=list[UserAdminView])
async def list_users(
    session: SessionDep,
    admin: AdminUser,
    q: Annotated[
        str | None, Query(max_length=100, description="part of the username or e-mail")
    ] = None,
    state: Annotated[
        users.AccountState | None,
        Query(description="only accounts in this state (pending: sign-ups awaiting approval)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=users.MAX_LIST)] = users.MAX_LIST,
    offset: Offset = 0,
) -> list[UserAdminView]:
    found = await users.search_users(session, admin, q=q, state=state, limit=limit, offset=offset)
    return [UserAdminView.model_validate(u) for u in found.items]


@router.post(
    "/{user_id}/approve", response_model=UserAdminView, summary="Approve a sign-up request (mailed)"
)
async def approve_signup(
    user_id: str,
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    admin: AdminUser,
    now: Now,
) -> UserAdminView:
    done = await life_cycle.approve(
        session, runtime.settings, admin, user_id, origin=request_origin(request), now=now
    )
    mail_later(background, runtime.settings, done.mails)
    return UserAdminView.model_validate(done.value)


@router.post(
    "/{user_id}/reject",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Reject a sign-up request: the account goes and the requester is told by e-mail",
)
async def reject_signup(
    user_id: str,
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    admin: AdminUser,
    now: Now,
) -> Response:
    done = await life_cycle.reject(
        session, runtime.settings, admin, user_id, origin=request_origin(request), now=now
    )
    mail_later(background, runtime.settings, done.mails)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{user_id}/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UserAdminView,
    summary="Mail the user a link to set a new password",
)
async def send_password_reset(
    user_id: str,
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    admin: AdminUser,
    now: Now,
) -> UserAdminView:
    done = await life_cycle.send_reset(
        session, runtime.settings, admin, user_id, origin=request_origin(request), now=now
    )
    mail_later(background, runtime.settings, done.mails)
    return UserAdminView.model_validate(done.value)


@router.post("", response_model=UserAdminView, status_code=status.HTTP_201_CREATED)
async def create_user(
    body: UserCreate, request: Request, session: SessionDep, admin: AdminUser, now: Now
) -> UserAdminView:
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
    return UserAdminView.model_validate(user)


@router.patch("/{user_id}", response_model=UserAdminView)
async def update_user(
    user_id: str,
    body: UserUpdate,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    now: Now,
) -> UserAdminView:
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
    return UserAdminView.model_validate(user)

"""The account life cycle over REST: sign up, verify an address, reset a forgotten password,
delete your own account. Mails go after the answer (accounts/account_mail.py); these routes
are rate limited per client address with the logins (monitoring/middleware.py)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, BackgroundTasks, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.accounts import deletion, life_cycle, password_reset
from imputehub.accounts.account_mail import mail_later
from imputehub.api.admin import request_origin
from imputehub.api.auth import throttle_policy
from imputehub.api.deps import CurrentUser, Now, RuntimeDep, SessionDep
from imputehub.operations import hub_settings
from imputehub.operations.hub_settings import SignupMode

router = APIRouter(prefix="/auth", tags=["accounts"])


class SignupPolicy(BaseModel):
    mode: SignupMode = Field(
        description="closed: admins create accounts; approval: an admin approves each; "
        "open: anyone with a verified address"
    )
    domains: list[str] = Field(
        description="sign-ups only from addresses at these domains; empty: any"
    )


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class SignupAccepted(BaseModel):
    status: Literal["unverified"] = "unverified"
    detail: str


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)


class Verified(BaseModel):
    status: Literal["active", "pending"]
    detail: str


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(
        min_length=1, max_length=254, description="the account's e-mail address (or username)"
    )


class Accepted(BaseModel):
    detail: str


class ResetConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=1024)


class DeleteAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024)


class DeletionStarted(BaseModel):
    status: Literal["deleted", "deleting"]
    jobs_stopping: int = Field(description="active jobs being cancelled at their services first")


@router.get(
    "/signup-policy", response_model=SignupPolicy, summary="Whether and how people may sign up"
)
async def signup_policy(session: SessionDep) -> SignupPolicy:
    settings = await hub_settings.load(session)
    return SignupPolicy(mode=settings.signup_mode, domains=list(settings.signup_domains))


@router.post(
    "/signup",
    response_model=SignupAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask for an account",
)
async def sign_up(
    body: SignupRequest,
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    now: Now,
) -> SignupAccepted:
    made = await life_cycle.sign_up(
        session,
        runtime.settings,
        username=body.username,
        email=body.email,
        password=body.password,
        origin=request_origin(request),
        now=now,
    )
    mail_later(background, runtime.settings, made.mails)
    return SignupAccepted(detail=f"a link to confirm {made.value.email} is on its way")


@router.post(
    "/verify-email",
    response_model=Verified,
    summary="Confirm an address with the mailed link's token",
)
async def verify_email(
    body: TokenBody,
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    now: Now,
) -> Verified:
    done = await life_cycle.verify_email(
        session, runtime.settings, body.token, origin=request_origin(request), now=now
    )
    mail_later(background, runtime.settings, done.mails)
    if done.value.signup_status is None:
        return Verified(status="active", detail="your address is confirmed; you can sign in")
    return Verified(
        status="pending",
        detail="your address is confirmed; an admin will look at your request and you will "
        "get an e-mail",
    )


@router.post(
    "/password-reset",
    response_model=Accepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Mail a link to set a new password",
)
async def ask_for_reset(
    body: ResetRequest,
    request: Request,
    background: BackgroundTasks,
    runtime: RuntimeDep,
    session: SessionDep,
    now: Now,
) -> Accepted:
    asked = await life_cycle.ask_for_reset(
        session, runtime.settings, body.email, origin=request_origin(request), now=now
    )
    mail_later(background, runtime.settings, asked.mails)
    return Accepted(detail=password_reset.ANSWER)


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with the mailed link's token",
)
async def reset_password(
    body: ResetConfirm, request: Request, session: SessionDep, now: Now
) -> Response:
    await password_reset.reset_password(
        session, body.token, body.new_password, origin=request_origin(request), now=now
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/delete-account",
    response_model=DeletionStarted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Delete your own account, its jobs, files and results",
)
async def delete_account(
    body: DeleteAccount,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    user: CurrentUser,
    now: Now,
) -> DeletionStarted:
    stopping = await deletion.request_deletion(
        runtime.db,
        session,
        user,
        password=body.password,
        origin=request_origin(request),
        now=now,
        policy=throttle_policy(runtime),
    )
    await session.commit()
    if stopping:
        runtime.wake_workers()
        return DeletionStarted(status="deleting", jobs_stopping=stopping)
    gone = await deletion.finish(runtime, user.id, now=now)
    return DeletionStarted(status="deleted" if gone else "deleting", jobs_stopping=0)

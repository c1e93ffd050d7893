"""The account life cycle as the API and the pages call it: each use case does its work in
the caller's transaction and returns the mails to send once that has committed (after the
answer: account_mail.send in a background task)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import account_mail, password_reset, signup, users
from imputehub.config import Settings
from imputehub.db.models import User
from imputehub.monitoring import audit
from imputehub.operations import hub_settings

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Mailed(Generic[T]):
    value: T
    mails: tuple[EmailMessage, ...] = ()


async def sign_up(
    session: AsyncSession,
    settings: Settings,
    *,
    username: str,
    email: str,
    password: str,
    origin: audit.Origin | None,
    now: datetime,
) -> Mailed[User]:
    made = await signup.sign_up(
        session,
        await hub_settings.load(session),
        username=username,
        email=email,
        password=password,
        origin=origin,
        now=now,
    )
    user = made.user
    mail = account_mail.verify_email(
        settings, to=user.email or "", username=user.username, token=made.token
    )
    return Mailed(value=user, mails=(mail,))


async def verify_email(
    session: AsyncSession,
    settings: Settings,
    token: str,
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> Mailed[User]:
    user = await signup.verify_email(
        session, await hub_settings.load(session), token, origin=origin, now=now
    )
    mails: tuple[EmailMessage, ...] = ()
    if user.signup_status == signup.SignupStatus.PENDING.value:
        admins = await session.scalars(
            select(User).where(
                User.role == users.Role.ADMIN, User.is_active.is_(True), User.email.is_not(None)
            )
        )
        mails = tuple(
            account_mail.request_waiting(
                settings, to=admin.email or "", username=user.username, email=user.email or ""
            )
            for admin in admins
        )
    return Mailed(value=user, mails=mails)


async def ask_for_reset(
    session: AsyncSession,
    settings: Settings,
    address: str,
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> Mailed[None]:
    found = await password_reset.request_reset(session, address, origin=origin, now=now)
    if found is None:
        return Mailed(value=None)
    mail = account_mail.reset_password(
        settings,
        to=found.user.email or "",
        username=found.user.username,
        token=found.token,
        by_admin=False,
    )
    return Mailed(value=None, mails=(mail,))


async def send_reset(
    session: AsyncSession,
    settings: Settings,
    admin: User,
    user_id: str,
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> Mailed[User]:
    sent = await password_reset.send_reset(session, admin, user_id, origin=origin, now=now)
    mail = account_mail.reset_password(
        settings,
        to=sent.user.email or "",
        username=sent.user.username,
        token=sent.token,
        by_admin=True,
    )
    return Mailed(value=sent.user, mails=(mail,))


async def approve(
    session: AsyncSession,
    settings: Settings,
    admin: User,
    user_id: str,
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> Mailed[User]:
    user = await signup.approve(session, admin, user_id, origin=origin, now=now)
    mails: tuple[EmailMessage, ...] = ()
    if user.email:
        mails = (
            account_mail.signup_decided(
                settings, to=user.email, username=user.username, approved=True
            ),
        )
    return Mailed(value=user, mails=mails)


async def reject(
    session: AsyncSession,
    settings: Settings,
    admin: User,
    user_id: str,
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> Mailed[signup.Rejected]:
    gone = await signup.reject(session, admin, user_id, origin=origin, now=now)
    mails: tuple[EmailMessage, ...] = ()
    if gone.email:
        mails = (
            account_mail.signup_decided(
                settings, to=gone.email, username=gone.username, approved=False
            ),
        )
    return Mailed(value=gone, mails=mails)

"""Account use cases: create, authenticate (throttled), change password, manage users."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts import api_tokens, browser_sessions, passwords, throttle
from imputehub.db.models import User
from imputehub.db.session import Database
from imputehub.domain.errors import (
    AuthenticationRequired,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
MAX_EMAIL_LENGTH = 254  # as the column, and RFC 5321's path limit
# An address mail servers take: the local part's unquoted characters (RFC 5322 atext and
# dots) and a domain of letters, digits, hyphens and dots (IDNs as punycode). No markup,
# spaces or quotes: the address goes into mail headers and onto pages.
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z0-9-]{2,63}$"
)


SIGNUP_WAITS = {
    "unverified": "confirm your e-mail address first: follow the link in the mail we sent",
    "pending": "your account waits for an admin's approval; you will get an e-mail",
}


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


def is_admin(user: User) -> bool:
    return user.role == Role.ADMIN


def require_admin(user: User) -> None:
    if not is_admin(user):
        raise PermissionDenied("this action needs the admin role")


def _check_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise InvalidInput(
            "username must be 2-64 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field="username",
        )
    return username


def check_email(email: str | None) -> str | None:
    if email is None or email == "":
        return None
    if not EMAIL_RE.match(email):
        raise InvalidInput("email address is not valid", field="email")
    return email


def _check_role(role: str) -> str:
    if role not in {r.value for r in Role}:
        raise InvalidInput("role must be 'admin' or 'user'", field="role")
    return role


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def find_by_username(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username))


async def find_for_login(session: AsyncSession, name: str) -> User | None:
    """The account a sign-in names: its username, or an e-mail address that exactly one
    account has (e-mail addresses are not unique; an ambiguous one opens nothing)."""
    user = await find_by_username(session, name)
    if user is not None or "@" not in name:
        return user
    found = list(
        await session.scalars(
            select(User).where(func.lower(User.email) == name.strip().lower()).limit(2)
        )
    )
    return found[0] if len(found) == 1 else None


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    now: datetime,
    email: str | None = None,
    role: str = Role.USER,
) -> User:
    _check_username(username)
    email = check_email(email)
    _check_role(role)
    password_hash = passwords.hash_password(password)
    if await find_by_username(session, username) is not None:
        raise Conflict(f"username '{username}' is taken", code="username_taken")
    user = User(
        username=username,
        email=email,
        password_hash=password_hash,
        role=role,
        is_active=True,
        token_version=0,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    return user


async def setup_first_admin(
    session: AsyncSession, *, username: str, password: str, email: str | None, now: datetime
) -> User:
    """Create the first admin; only while the hub has no user at all."""
    if await count_users(session) > 0:
        raise Conflict("the hub is already set up", code="already_set_up")
    return await create_user(
        session, username=username, password=password, email=email, role=Role.ADMIN, now=now
    )


@dataclass(frozen=True, kw_only=True)
class BootstrapResult:
    user: User | None
    generated_password: str | None


async def bootstrap_admin(
    session: AsyncSession,
    *,
    username: str | None,
    password: str | None,
    email: str | None,
    now: datetime,
) -> BootstrapResult:
    """At start-up: make the first admin if there is no user yet.

    Without a configured password one is generated and returned, to be shown once.
    """
    if await count_users(session) > 0:
        return BootstrapResult(user=None, generated_password=None)
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(18)
    user = await create_user(
        session,
        username=username or "admin",
        password=password,
        email=email,
        role=Role.ADMIN,
        now=now,
    )
    return BootstrapResult(user=user, generated_password=generated)


async def authenticate(
    db: Database,
    *,
    username: str,
    password: str,
    address: str,
    now: datetime,
    policy: throttle.Policy,
) -> User:
    """Check a username (or one account's e-mail) and password from `address`, throttled.

    Whether the name exists changes neither the answer nor its time: an unknown name is
    checked against a dummy hash and throttled like any other. Runs its own transactions
    so that a failure is recorded even though it raises.
    """
    source = throttle.Source(address=address, account=username)
    async with db.session() as session:
        await throttle.check(session, source, now=now, policy=policy)
        user = await find_for_login(session, username)
        ok = passwords.verify_password(user.password_hash if user else None, password)
        if user is not None and ok and user.is_active:
            await throttle.record_success(session, source)
            user.last_login_at = now
            if passwords.needs_rehash(user.password_hash):
                user.password_hash = passwords.hash_password(password)
            return user
        if user is not None and ok and user.signup_status is not None:
            # The right password: saying why the account is not open yet tells nothing
            # its owner does not know.
            raise PermissionDenied(SIGNUP_WAITS[user.signup_status], code="signup_incomplete")
        await throttle.record_failure(session, source, now=now, policy=policy)
    raise AuthenticationRequired("wrong username or password", code="invalid_credentials")


async def check_current_password(
    db: Database,
    user: User,
    password: str,
    *,
    address: str,
    now: datetime,
    policy: throttle.Policy,
) -> None:
    """Before a password change: the current password, guessed no faster than at login
    (a stolen session must not become a way to find the password). Failures are counted
    in a transaction of their own, as the caller's rolls back on the error."""
    source = throttle.Source(address=address, account=user.username)
    async with db.session() as session:
        await throttle.check(session, source, now=now, policy=policy)
        if passwords.verify_password(user.password_hash, password):
            await throttle.record_success(session, source)
            return
        await throttle.record_failure(session, source, now=now, policy=policy)
    raise PermissionDenied("the current password is wrong", code="wrong_password")


async def change_password(
    session: AsyncSession, user: User, *, new_password: str, now: datetime
) -> User:
    """Set a new password (the current one checked by `check_current_password`)."""
    user.password_hash = passwords.hash_password(new_password)
    await end_sessions_and_tokens(session, user)
    user.updated_at = now
    await session.flush()
    return user


async def set_email(session: AsyncSession, user: User, email: str, *, now: datetime) -> User:
    """A user's own address (stripped; empty for none). Another account may share it:
    sign-in by e-mail refuses an ambiguous address (find_for_login)."""
    email = email.strip()
    if len(email) > MAX_EMAIL_LENGTH:
        raise InvalidInput(
            f"email address must be at most {MAX_EMAIL_LENGTH} characters", field="email"
        )
    user.email = check_email(email)
    user.updated_at = now
    await session.flush()
    return user


async def _reset_password(session: AsyncSession, user: User, password: str) -> None:
    """A new password set by someone else (an admin, the operator)."""
    user.password_hash = passwords.hash_password(password)
    await end_sessions_and_tokens(session, user)


async def end_sessions_and_tokens(session: AsyncSession, user: User) -> None:
    # Whoever knew the old password may have opened sessions or made API tokens with it;
    # a password change is how an owner shuts them out, so all of them end.
    user.token_version += 1
    await api_tokens.revoke_all(session, user)
    await browser_sessions.end_all(session, user)


MAX_LIST = 500


class AccountState(StrEnum):
    ACTIVE = "active"  # may sign in
    INACTIVE = "inactive"  # deactivated by an admin
    UNVERIFIED = "unverified"  # a sign-up whose address is not confirmed yet
    PENDING = "pending"  # a sign-up waiting for an admin's approval
    DELETING = "deleting"  # its owner asked for it to go


@dataclass(frozen=True, kw_only=True)
class UserPage:
    items: list[User]
    total: int


def _state_filter(state: AccountState) -> Any:
    if state is AccountState.ACTIVE:
        return User.is_active.is_(True)
    if state is AccountState.INACTIVE:
        return (
            User.is_active.is_(False)
            & User.signup_status.is_(None)
            & User.deletion_requested_at.is_(None)
        )
    if state is AccountState.DELETING:
        return User.deletion_requested_at.is_not(None)
    return User.signup_status == state.value


async def search_users(
    session: AsyncSession,
    actor: User,
    *,
    q: str | None = None,
    state: AccountState | None = None,
    limit: int = MAX_LIST,
    offset: int = 0,
) -> UserPage:
    """Admins: accounts by a part of their username or address, and by state; oldest first."""
    require_admin(actor)
    conditions: list[Any] = []
    if q and q.strip():
        needle = (
            "%" + q.strip().lower().replace("\\", "").replace("%", "").replace("_", "\\_") + "%"
        )
        conditions.append(
            func.lower(User.username).like(needle, escape="\\")
            | func.lower(func.coalesce(User.email, "")).like(needle, escape="\\")
        )
    if state is not None:
        conditions.append(_state_filter(state))
    total = await session.scalar(select(func.count()).select_from(User).where(*conditions))
    items = await session.scalars(
        select(User)
        .where(*conditions)
        .order_by(User.created_at, User.username)
        .limit(min(limit, MAX_LIST))
        .offset(offset)
    )
    return UserPage(items=list(items), total=int(total or 0))


async def list_users(session: AsyncSession, actor: User) -> list[User]:
    require_admin(actor)
    return await all_users(session)


async def all_users(session: AsyncSession) -> list[User]:
    """Every account; operator use (CLI on the server) and, through list_users, admins."""
    return list(await session.scalars(select(User).order_by(User.created_at, User.username)))


async def get_user(session: AsyncSession, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def update_user(
    session: AsyncSession,
    actor: User,
    user_id: str,
    *,
    now: datetime,
    email: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    fields_set: frozenset[str] = frozenset(),
) -> User:
    """Admin edits of a user. `fields_set` names the fields the caller actually sent."""
    require_admin(actor)
    user = await get_user(session, user_id)
    if "email" in fields_set:
        user.email = check_email(email)
    if "role" in fields_set and role is not None:
        _check_role(role)
        if user.id == actor.id and role != Role.ADMIN:
            raise Conflict("admins cannot remove their own admin role", code="last_admin")
        user.role = role
    if "is_active" in fields_set and is_active is not None:
        if user.id == actor.id and not is_active:
            raise Conflict("admins cannot deactivate themselves", code="last_admin")
        user.is_active = is_active
        if not is_active:
            user.token_version += 1
    if "password" in fields_set and password is not None:
        await _reset_password(session, user, password)
    user.updated_at = now
    await session.flush()
    return user


async def set_role(session: AsyncSession, username: str, role: str, *, now: datetime) -> User:
    """Operator use (CLI on the server): no actor, the shell account is the authority."""
    user = await find_by_username(session, username)
    if user is None:
        raise NotFound(f"no user named '{username}'")
    user.role = _check_role(role)
    user.updated_at = now
    await session.flush()
    return user


async def set_password(
    session: AsyncSession, username: str, password: str, *, now: datetime
) -> User:
    user = await find_by_username(session, username)
    if user is None:
        raise NotFound(f"no user named '{username}'")
    await _reset_password(session, user, password)
    user.updated_at = now
    await session.flush()
    return user

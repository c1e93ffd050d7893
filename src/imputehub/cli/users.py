"""`imputehub users ...`: operator commands acting on the hub's database directly.

Like Django's createsuperuser: run them on the server, with the hub's configuration; the
shell account is the authority, no login needed.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from imputehub.cli.errors import run_async
from imputehub.cli.options import DataDirOption, JsonOption
from imputehub.cli.output import print_json, print_table
from imputehub.cli.prompts import read_password
from imputehub.cli.settings import load_settings

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from imputehub.db.models import User

app = typer.Typer(help="Manage user accounts (on the server, against its database).")

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]
RoleName = Literal["admin", "user"]

USER_COLUMNS = (
    ("username", "Username"),
    ("email", "E-mail"),
    ("role", "Role"),
    ("is_active", "Active"),
    ("created_at", "Created"),
    ("last_login_at", "Last login"),
)


@app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="Login name.")],
    email: Annotated[str | None, typer.Option("--email", help="E-mail address.")] = None,
    role: Annotated[RoleName, typer.Option("--role", help="admin or user.")] = "user",
    password_stdin: PasswordStdin = False,
    data_dir: DataDirOption = None,
) -> None:
    """Create a user account (asks for the password twice unless --password-stdin)."""
    settings = load_settings(data_dir=data_dir)
    password = read_password(from_stdin=password_stdin, confirm=True)

    async def create_user() -> User:
        from imputehub.accounts import users
        from imputehub.cli.database import operator_session
        from imputehub.clock import SystemClock

        async with operator_session(settings.resolved_database_url) as session:
            now = SystemClock().now()
            user = await users.create_user(
                session,
                username=username,
                password=password,
                email=email,
                role=role,
                now=now,
            )
            await _audit(session, "user_created", user, now, {"role": user.role})
            return user

    user = run_async(create_user())
    typer.echo(f"created user '{user.username}' (role {user.role})")


@app.command("list")
def list_(json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """List all user accounts."""
    settings = load_settings(data_dir=data_dir)

    async def all_users() -> list[dict[str, Any]]:
        from imputehub.accounts import users
        from imputehub.cli.database import operator_session

        async with operator_session(settings.resolved_database_url) as session:
            return [_public(user) for user in await users.all_users(session)]

    records = run_async(all_users())
    if json:
        print_json(records)
    else:
        print_table(records, USER_COLUMNS)


@app.command("set-role")
def set_role(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[RoleName, typer.Argument(help="admin or user.")],
    data_dir: DataDirOption = None,
) -> None:
    """Make a user an admin, or an admin a plain user."""
    settings = load_settings(data_dir=data_dir)

    async def change() -> User:
        from imputehub.accounts import users
        from imputehub.cli.database import operator_session
        from imputehub.clock import SystemClock

        async with operator_session(settings.resolved_database_url) as session:
            now = SystemClock().now()
            user = await users.set_role(session, username, role, now=now)
            await _audit(session, "role_changed", user, now, {"role": user.role})
            return user

    user = run_async(change())
    typer.echo(f"'{user.username}' now has the role {user.role}")


@app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: PasswordStdin = False,
    data_dir: DataDirOption = None,
) -> None:
    """Set a user's password (ends their sessions and revokes their API tokens)."""
    settings = load_settings(data_dir=data_dir)
    password = read_password(from_stdin=password_stdin, confirm=True, prompt="New password")

    async def change() -> User:
        from imputehub.accounts import users
        from imputehub.cli.database import operator_session
        from imputehub.clock import SystemClock

        async with operator_session(settings.resolved_database_url) as session:
            now = SystemClock().now()
            user = await users.set_password(session, username, password, now=now)
            await _audit(session, "password_set", user, now, {})
            return user

    user = run_async(change())
    typer.echo(f"password of '{user.username}' changed")


def _public(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": user.created_at.isoformat(),
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


async def _audit(
    session: AsyncSession, action: str, user: User, now: datetime, details: dict[str, Any]
) -> None:
    """Operator commands change accounts outside the API: the audit log says so and who."""
    from imputehub.monitoring import audit

    await audit.record(
        session,
        action=action,
        actor=f"operator:{_login_name()}"[:64],
        now=now,
        target_type="user",
        target_id=user.id,
        details={"username": user.username, "via": "command line", **details},
    )


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no name
        return "unknown"

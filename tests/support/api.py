"""Helpers for API tests: users with known passwords and their bearer headers.

Actors are made without the login round trip (and with one password hash computed per
test session): argon2id is deliberately slow, and login itself is tested in test_auth.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import httpx

from imputehub.accounts import passwords, tokens
from imputehub.db.models import User
from imputehub.runtime import Runtime

PASSWORD = "correct horse battery staple"


@functools.cache
def password_hash() -> str:
    return passwords.hash_password(PASSWORD)


@dataclass(frozen=True)
class Actor:
    id: str
    username: str
    headers: dict[str, str]


async def make_actor(
    runtime: Runtime, client: httpx.AsyncClient, username: str, role: str = "user"
) -> Actor:
    """A user whose password is PASSWORD, with a valid access token in `headers`."""
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        user = User(
            username=username,
            email=f"{username}@example.org",
            password_hash=password_hash(),
            role=role,
            is_active=True,
            token_version=0,
            created_at=now,
            updated_at=now,
        )
        session.add(user)
    token = tokens.issue_access_token(
        user_id=user.id,
        token_version=0,
        secret_key=runtime.secret_key,
        now=now,
        ttl_seconds=runtime.settings.access_token_ttl_seconds,
    )
    return Actor(id=user.id, username=username, headers={"Authorization": f"Bearer {token}"})

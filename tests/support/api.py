"""Helpers for API tests: users with known passwords and their bearer headers."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from imputehub.accounts import users
from imputehub.runtime import Runtime

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Actor:
    id: str
    username: str
    headers: dict[str, str]


async def make_actor(
    runtime: Runtime, client: httpx.AsyncClient, username: str, role: str = "user"
) -> Actor:
    async with runtime.db.session() as session:
        user = await users.create_user(
            session,
            username=username,
            password=PASSWORD,
            email=f"{username}@example.org",
            role=role,
            now=runtime.clock.now(),
        )
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    return Actor(id=user.id, username=username, headers={"Authorization": f"Bearer {token}"})

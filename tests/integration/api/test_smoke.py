import httpx

from tests.support.api import Actor


async def test_me_returns_the_logged_in_user(client: httpx.AsyncClient, alice: Actor) -> None:
    response = await client.get("/api/v1/auth/me", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


async def test_me_without_token_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "authentication_required"

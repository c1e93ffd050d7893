"""Access tokens (short-lived JWTs) and personal API tokens (random, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from imputehub.domain.errors import AuthenticationRequired

ALGORITHM = "HS256"
API_TOKEN_PREFIX = "ih_"  # noqa: S105 - not a secret; makes leaked tokens greppable by secret scanners


@dataclass(frozen=True, kw_only=True)
class AccessClaims:
    user_id: str
    token_version: int
    expires_at: datetime


def issue_access_token(
    *, user_id: str, token_version: int, secret_key: str, now: datetime, ttl_seconds: int
) -> str:
    payload = {
        "sub": user_id,
        "ver": token_version,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
        "typ": "access",
    }
    return jwt.encode(payload, secret_key, algorithm=ALGORITHM)


def decode_access_token(token: str, *, secret_key: str, now: datetime) -> AccessClaims:
    try:
        payload = jwt.decode(
            token,
            secret_key,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "require": ["sub", "exp", "ver"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthenticationRequired("invalid access token") from exc
    if payload.get("typ") != "access" or not isinstance(payload["sub"], str):
        raise AuthenticationRequired("invalid access token")
    # Expiry is checked against our clock, not the library's, so tests can move time.
    if int(payload["exp"]) <= now.timestamp():
        raise AuthenticationRequired("access token expired", code="token_expired")
    return AccessClaims(
        user_id=payload["sub"],
        token_version=int(payload["ver"]),
        expires_at=datetime.fromtimestamp(int(payload["exp"]), tz=now.tzinfo),
    )


def looks_like_api_token(token: str) -> bool:
    return token.startswith(API_TOKEN_PREFIX)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    # A fast hash is right here: the token has 256 bits of entropy, unlike a password.
    return hashlib.sha256(token.encode()).hexdigest()

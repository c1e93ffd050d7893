"""Passwords (argon2id), access tokens (JWT) and the credential vault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.fernet import Fernet

from imputehub.accounts import passwords, tokens
from imputehub.accounts.vault import Vault, VaultError, derive_key
from imputehub.domain.errors import AuthenticationRequired, InvalidInput

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SECRET = "s" * 64


def test_passwords_are_hashed_with_argon2id_and_verify() -> None:
    hashed = passwords.hash_password("a long passphrase")
    assert hashed.startswith("$argon2id$")
    assert "a long passphrase" not in hashed
    assert passwords.verify_password(hashed, "a long passphrase")
    assert not passwords.verify_password(hashed, "a long passphrasE")


def test_verify_without_a_hash_is_false_not_an_error() -> None:
    assert not passwords.verify_password(None, "whatever-password")
    assert not passwords.verify_password("not-a-hash", "whatever-password")


@pytest.mark.parametrize("password", ["", "short", "x" * 1025])
def test_password_rules(password: str) -> None:
    with pytest.raises(InvalidInput):
        passwords.hash_password(password)


def test_access_token_round_trip() -> None:
    token = tokens.issue_access_token(
        user_id="u1", token_version=3, secret_key=SECRET, now=NOW, ttl_seconds=60
    )
    claims = tokens.decode_access_token(token, secret_key=SECRET, now=NOW)
    assert (claims.user_id, claims.token_version) == ("u1", 3)
    assert claims.expires_at == NOW + timedelta(seconds=60)


def test_access_token_expires_by_our_clock() -> None:
    token = tokens.issue_access_token(
        user_id="u1", token_version=0, secret_key=SECRET, now=NOW, ttl_seconds=60
    )
    with pytest.raises(AuthenticationRequired) as info:
        tokens.decode_access_token(token, secret_key=SECRET, now=NOW + timedelta(seconds=61))
    assert info.value.code == "token_expired"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        jwt.encode({"sub": "u1", "ver": 0, "exp": 2**40, "typ": "access"}, "other-" * 8),
        jwt.encode({"sub": "u1", "ver": 0, "exp": 2**40, "typ": "refresh"}, SECRET),
        jwt.encode({"sub": "u1", "exp": 2**40, "typ": "access"}, SECRET),
        jwt.encode({"sub": "u1", "ver": 0, "exp": 2**40, "typ": "access"}, SECRET, "HS512"),
    ],
    ids=["garbage", "wrong-key", "wrong-type", "no-version", "other-algorithm"],
)
def test_forged_or_foreign_tokens_are_rejected(token: str) -> None:
    with pytest.raises(AuthenticationRequired):
        tokens.decode_access_token(token, secret_key=SECRET, now=NOW)


def test_unsigned_token_is_rejected() -> None:
    header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
    body = jwt.utils.base64url_encode(  # type: ignore[attr-defined]
        b'{"sub":"u1","ver":0,"exp":9999999999,"typ":"access"}'
    ).decode()
    with pytest.raises(AuthenticationRequired):
        tokens.decode_access_token(f"{header}.{body}.", secret_key=SECRET, now=NOW)


def test_api_tokens_are_random_prefixed_and_hashed() -> None:
    first, second = tokens.new_api_token(), tokens.new_api_token()
    assert first != second
    assert tokens.looks_like_api_token(first)
    assert len(first) > 40
    assert tokens.hash_api_token(first) != first
    assert len(tokens.hash_api_token(first)) == 64


def test_vault_encrypts_and_decrypts_without_storing_plaintext() -> None:
    vault = Vault.from_settings(None, SECRET)
    sealed = vault.encrypt("service-token-123")
    assert "service-token-123" not in sealed
    assert vault.decrypt(sealed) == "service-token-123"
    assert vault.encrypt("service-token-123") != sealed  # random IV


def test_vault_key_rotation() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_old = Vault([old_key]).encrypt("tok")
    rotated_vault = Vault([new_key, old_key])
    assert rotated_vault.decrypt(sealed_old) == "tok"
    resealed = rotated_vault.rotate(sealed_old)
    assert Vault([new_key]).decrypt(resealed) == "tok"
    with pytest.raises(VaultError):
        Vault([new_key]).decrypt(sealed_old)


def test_vault_with_the_wrong_key_gives_a_clear_error() -> None:
    sealed = Vault([derive_key(SECRET)]).encrypt("tok")
    with pytest.raises(VaultError) as info:
        Vault([derive_key("another secret key entirely, 40 chars")]).decrypt(sealed)
    assert "tok" not in info.value.message


def test_vault_rejects_malformed_keys() -> None:
    with pytest.raises(ValueError, match="not a valid Fernet key"):
        Vault(["not-a-key"])
    with pytest.raises(ValueError, match="at least one key"):
        Vault([])

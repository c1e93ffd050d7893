"""Encryption of service credentials at rest (Fernet: AES-128-CBC + HMAC-SHA256).

Several keys may be configured; the first encrypts, all decrypt, so keys rotate by
prepending a new one and re-encrypting (`rotate`).
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from imputehub.domain.errors import ImputehubError


class VaultError(ImputehubError):
    code = "credential_unreadable"


def derive_key(secret_key: str) -> str:
    """A Fernet key derived from the hub's secret key (used when no keys are configured)."""
    raw = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"imputehub-vault", info=b"credentials"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw).decode()


class Vault:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("the vault needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError as exc:
            raise ValueError("an encryption key is not a valid Fernet key") from exc

    @classmethod
    def from_settings(cls, encryption_keys: str | None, secret_key: str) -> Vault:
        if encryption_keys:
            return cls([key.strip() for key in encryption_keys.split(",") if key.strip()])
        return cls([derive_key(secret_key)])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise VaultError(
                "a stored credential cannot be decrypted with the configured keys"
            ) from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise VaultError(
                "a stored credential cannot be decrypted with the configured keys"
            ) from exc

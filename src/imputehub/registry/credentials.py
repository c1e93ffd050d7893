"""Which credential the hub presents to a service on behalf of a user."""

from __future__ import annotations

from imputehub.accounts.vault import Vault
from imputehub.db.models import Service


def platform_credential(vault: Vault, service: Service) -> str | None:
    """The admin-held credential for `service`, decrypted; None when unset.

    (User-owned credentials, which take precedence, come with the connectors work.)
    """
    if service.credential_encrypted is None:
        return None
    return vault.decrypt(service.credential_encrypted)

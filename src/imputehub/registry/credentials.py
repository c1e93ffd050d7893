"""Which credential the hub presents to a service on behalf of a user.

A user's own credential for the service wins over the platform credential the admins hold.
The choice made when a job is submitted is recorded on the job (`credential_source`) and kept
for the job's life: a service knows a job only under the account that submitted it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.vault import Vault
from imputehub.db.models import Service, UserServiceCredential
from imputehub.domain.errors import CredentialRejected

USER = "user"
PLATFORM = "platform"


def platform_credential(vault: Vault, service: Service) -> str | None:
    """The admin-held credential for `service`, decrypted; None when unset."""
    if service.credential_encrypted is None:
        return None
    return vault.decrypt(service.credential_encrypted)


async def user_credential(
    session: AsyncSession, vault: Vault, *, user_id: str, service_id: str
) -> str | None:
    row = await session.scalar(
        select(UserServiceCredential).where(
            UserServiceCredential.user_id == user_id,
            UserServiceCredential.service_id == service_id,
        )
    )
    return None if row is None else vault.decrypt(row.credential_encrypted)


async def credential_for_job(
    session: AsyncSession,
    vault: Vault,
    service: Service,
    *,
    user_id: str,
    source: str | None,
) -> tuple[str | None, str]:
    """The credential for a job's next call, and its source ("user" or "platform").

    `source` None (not submitted yet): the user's own if set, else the platform's. Once a
    job was submitted with the user's own credential it keeps using it; if the user removed
    it meanwhile the job cannot be followed, which the error says.
    """
    own = await user_credential(session, vault, user_id=user_id, service_id=service.id)
    if source == USER:
        if own is None:
            raise CredentialRejected(
                "the credential this job was submitted with was removed; "
                "set your credential for the service again to follow the job"
            )
        return own, USER
    if source is None and own is not None:
        return own, USER
    return platform_credential(vault, service), PLATFORM

"""Which credential the hub presents to a service on behalf of a user, and what it may use.

A user's own credential for the service wins over the platform credential the admins hold.
The choice made when a job is submitted is recorded on the job (`credential_source`) and kept
for the job's life: a service knows a job only under the account that submitted it.

Some services list only the panels the caller's account may use (Cloudgene 3: Michigan,
TOPMed, H3Africa). The hub's panels are synced with the platform credential, so a user's own
credential may see fewer (or other) panels: `PanelAccess` records how they differ, by the
service's panel ids, and job creation refuses a panel the user's own credential is known
not to see - the job would otherwise fail hours later at the service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.vault import Vault
from imputehub.db.models import ReferencePanel, Service, UserServiceCredential
from imputehub.domain.errors import CredentialRejected, InvalidInput

USER = "user"
PLATFORM = "platform"

# Service types whose panel list depends on who asks (Cloudgene 3 filters the app's panels
# by the caller's permissions). Others list the same panels to everyone, or panels an admin
# configured by hand, so a user's credential tells nothing about them.
PANELS_BY_ACCOUNT = frozenset({"michigan"})
MAX_RECORDED_PANELS = 50  # per list; a service offers a handful
MAX_PANEL_ID_LENGTH = 300  # as reference_panels.panel_id
NAMED_IN_SENTENCE = 3


def platform_credential(vault: Vault, service: Service) -> str | None:
    """The admin-held credential for `service`, decrypted; None when unset."""
    if service.credential_encrypted is None:
        return None
    return vault.decrypt(service.credential_encrypted)


async def own_row(
    session: AsyncSession, *, user_id: str, service_id: str
) -> UserServiceCredential | None:
    """The user's own credential row for the service, if the user stored one."""
    row: UserServiceCredential | None = await session.scalar(
        select(UserServiceCredential).where(
            UserServiceCredential.user_id == user_id,
            UserServiceCredential.service_id == service_id,
        )
    )
    return row


async def user_credential(
    session: AsyncSession, vault: Vault, *, user_id: str, service_id: str
) -> str | None:
    row = await own_row(session, user_id=user_id, service_id=service_id)
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


# --- the panels a user's own credential sees -------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PanelAccess:
    """How the panels a user's own credential sees differ from the hub's (service panel ids)."""

    missing: tuple[str, ...] = ()  # the hub offers them; this account cannot use them
    extra: tuple[str, ...] = ()  # this account sees them; the hub does not offer them

    def to_json(self) -> dict[str, list[str]]:
        return {"missing": list(self.missing), "extra": list(self.extra)}

    @classmethod
    def from_json(cls, raw: object) -> PanelAccess | None:
        """What was recorded; None when nothing was (or it is not what this code writes)."""
        if not isinstance(raw, Mapping):
            return None
        lists = [raw.get("missing"), raw.get("extra")]
        if not all(isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in lists):
            return None
        return cls(missing=tuple(raw["missing"]), extra=tuple(raw["extra"]))


def _stands_for(hub_id: str, seen_id: str) -> bool:
    # An unversioned id (`apps@topmed-r3`) resolves to an installed version at run time.
    return seen_id == hub_id or seen_id.startswith(hub_id + "@")


def compare_panels(hub_ids: Iterable[str], seen_ids: Iterable[str]) -> PanelAccess:
    """The hub's panels the account does not see, and the panels it sees the hub does not."""
    hub = list(dict.fromkeys(hub_ids))
    seen = list(dict.fromkeys(i[:MAX_PANEL_ID_LENGTH] for i in seen_ids))
    missing = [h for h in hub if not any(_stands_for(h, s) for s in seen)]
    extra = [s for s in seen if not any(_stands_for(h, s) for h in hub)]
    return PanelAccess(
        missing=tuple(missing[:MAX_RECORDED_PANELS]), extra=tuple(extra[:MAX_RECORDED_PANELS])
    )


def _named(ids: tuple[str, ...]) -> str:
    shown = ", ".join(ids[:NAMED_IN_SENTENCE])
    return shown + (", …" if len(ids) > NAMED_IN_SENTENCE else "")


def describe_panel_access(service_name: str, access: PanelAccess | None) -> str | None:
    """One plain sentence for the user; None when the account sees what the hub offers."""
    if access is None:
        return None
    if access.missing:
        count = len(access.missing)
        return (
            f"Your account at {service_name} does not see {count} of the hub's panels "
            f"({_named(access.missing)}): jobs you submit with your own token cannot use "
            f"{'it' if count == 1 else 'them'}."
        )
    if access.extra:
        count = len(access.extra)
        panels = "panel" if count == 1 else "panels"
        return (
            f"Your account at {service_name} sees {count} {panels} the hub does not offer "
            f"({_named(access.extra)})."
        )
    return None


def recorded_panel_access(row: UserServiceCredential) -> PanelAccess | None:
    return PanelAccess.from_json(row.panel_access)


def record_panel_access(row: UserServiceCredential, access: PanelAccess | None) -> None:
    row.panel_access = None if access is None else access.to_json()


async def active_panel_ids(session: AsyncSession, service_id: str) -> list[str]:
    """The service's panels the hub offers, by the service's own ids."""
    return list(
        await session.scalars(
            select(ReferencePanel.panel_id)
            .where(ReferencePanel.service_id == service_id, ReferencePanel.is_active)
            .order_by(ReferencePanel.panel_id)
        )
    )


async def ensure_panel_visible(
    session: AsyncSession, *, user_id: str, service: Service, panel: ReferencePanel
) -> None:
    """InvalidInput when the user's own credential (which a job would use) is known not to
    see `panel`; nothing is known without one, or before the service was asked."""
    row = await own_row(session, user_id=user_id, service_id=service.id)
    access = recorded_panel_access(row) if row is not None else None
    if access is None or panel.panel_id not in access.missing:
        return
    named = panel.slug if panel.slug == panel.panel_id else f"{panel.slug} ({panel.panel_id})"
    remedy = (
        "remove your credential to use the hub's, or ask the service for access"
        if service.credential_encrypted is not None
        else "ask the service for access"
    )
    raise InvalidInput(
        f"your own credential for {service.name} does not give access to panel {named}; {remedy}",
        field="reference_panel_id",
    )

"""Settings that live in the database, changed by admins (console or REST) and audited:
who may sign up, and maintenance mode. Secrets never live here (environment or vault).

Each field is one row of `hub_settings`; a field without a row has its default, so a new
hub starts closed to sign-ups and out of maintenance.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.users import require_admin
from imputehub.db.models import HubSetting, User
from imputehub.domain.errors import InvalidInput
from imputehub.monitoring import audit

MAX_MESSAGE = 500
MAX_DOMAINS = 50
_DOMAIN = r"^(?:[a-z0-9-]{1,63}\.){1,8}[a-z0-9-]{2,63}$"


class SignupMode(StrEnum):
    CLOSED = "closed"  # admins create accounts
    APPROVAL = "approval"  # people ask; an admin approves or rejects
    OPEN = "open"  # anyone with a verified address (from an allowed domain)


class HeldOrRefused(StrEnum):
    """What happens to a job submitted during maintenance."""

    HOLD = "hold"  # accepted, and kept in the hub until maintenance ends
    REFUSE = "refuse"  # refused with a clear error


class HubSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    signup_mode: SignupMode = SignupMode.CLOSED
    # Sign-ups only from addresses at these domains (and their subdomains); empty: any.
    signup_domains: tuple[str, ...] = ()
    maintenance: bool = False
    maintenance_message: str = Field(default="", max_length=MAX_MESSAGE)
    maintenance_new_jobs: HeldOrRefused = HeldOrRefused.HOLD

    @field_validator("signup_domains", mode="before")
    @classmethod
    def _domains(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        return value

    @field_validator("signup_domains")
    @classmethod
    def _check_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(dict.fromkeys(d.strip().lower().lstrip("@") for d in value if d.strip()))
        if len(cleaned) > MAX_DOMAINS:
            raise ValueError(f"at most {MAX_DOMAINS} domains")
        for domain in cleaned:
            if not re.match(_DOMAIN, domain):
                raise ValueError(f"not a domain name: {domain!r}")
        return cleaned

    @field_validator("maintenance_message")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())

    def allows_address(self, email: str) -> bool:
        if not self.signup_domains:
            return True
        domain = email.rpartition("@")[2].lower()
        return any(domain == d or domain.endswith("." + d) for d in self.signup_domains)

    @property
    def holds_jobs(self) -> bool:
        return self.maintenance and self.maintenance_new_jobs is HeldOrRefused.HOLD

    @property
    def refuses_jobs(self) -> bool:
        return self.maintenance and self.maintenance_new_jobs is HeldOrRefused.REFUSE


FIELDS = tuple(HubSettings.model_fields)


async def load(session: AsyncSession) -> HubSettings:
    rows = await session.execute(select(HubSetting.key, HubSetting.value))
    stored = {key: value for key, value in rows.all() if key in FIELDS}
    try:
        return HubSettings.model_validate(stored)
    except ValidationError:
        # A row written by a newer or older hub that no longer validates: its defaults,
        # field by field, rather than a hub that cannot start its pages.
        good: dict[str, Any] = {}
        for key, value in stored.items():
            try:
                HubSettings.model_validate({key: value})
            except ValidationError:
                continue
            good[key] = value
        return HubSettings.model_validate(good)


def validate_changes(current: HubSettings, changes: dict[str, Any]) -> HubSettings:
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"unknown setting: {', '.join(unknown)}", field=unknown[0])
    try:
        return HubSettings.model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else None
        message = str(error["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"{field}: {message}", field=field) from None


async def change(
    session: AsyncSession,
    admin: User,
    changes: dict[str, Any],
    *,
    origin: audit.Origin | None,
    now: datetime,
) -> tuple[HubSettings, HubSettings]:
    """Apply an admin's changes; returns (before, after). Audited with both values (none of
    these settings is secret)."""
    require_admin(admin)
    before = await load(session)
    after = validate_changes(before, changes)
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    changed = [key for key in FIELDS if old[key] != new[key]]
    for key in changed:
        row = await session.get(HubSetting, key)
        if row is None:
            session.add(
                HubSetting(key=key, value=new[key], updated_at=now, updated_by=admin.username)
            )
        else:
            row.value, row.updated_at, row.updated_by = new[key], now, admin.username
    if changed:
        await session.flush()
        await audit.record(
            session,
            action="hub_settings_changed",
            actor=admin,
            now=now,
            target_type="hub",
            target_id="settings",
            origin=origin,
            details={"changed": {key: {"from": old[key], "to": new[key]} for key in changed}},
        )
    return before, after

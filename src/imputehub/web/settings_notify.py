"""Settings: notification preferences (event kind x channel) and webhooks (add with the
signing secret shown once, last delivery status, delete)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.accounts.browser_sessions import OpenSession
from imputehub.api.admin import request_origin
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.api.problems import status_for
from imputehub.domain.errors import ImputehubError
from imputehub.domain.notifications import Channel, EventKind
from imputehub.notify import inbox, webhooks
from imputehub.web import session_auth
from imputehub.web.settings_common import (
    CHANNEL_LABELS,
    KIND_LABELS,
    NoticeQuery,
    error_of,
    field,
    page,
    redirect_done,
    too_long,
)

router = APIRouter(include_in_schema=False)


# --- notification preferences ----------------------------------------------------------


def preference_rows(found: list[inbox.Preference]) -> list[dict[str, Any]]:
    """The matrix as the table shows it: one row per kind, one cell per channel."""
    enabled = {(p.kind, p.channel): p.enabled for p in found}
    return [
        {
            "kind": kind.value,
            "label": label,
            "cells": [
                {
                    "name": f"{kind.value}:{channel.value}",
                    "id": f"pref-{kind.value.replace('.', '-')}-{channel.value}",
                    "label": f"{label}: {CHANNEL_LABELS[channel]}",
                    "checked": enabled.get((kind, channel), False),
                }
                for channel in Channel
            ],
        }
        for kind, label in KIND_LABELS.items()
    ]


@router.get("/settings/notifications")
async def preferences(
    request: Request,
    session: SessionDep,
    opened: session_auth.SignedIn,
    done: NoticeQuery = None,
) -> Response:
    found = await inbox.get_preferences(session, opened.user)
    return page(
        request,
        opened,
        "preferences",
        {
            "rows": preference_rows(found),
            "channels": [CHANNEL_LABELS[c] for c in Channel],
            "email_address": opened.user.email,
        },
        notice=done,
    )


@router.post("/settings/notifications")
async def set_preferences(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    # A checkbox left unticked sends nothing: every cell of the matrix is set, ticked or not.
    changes = [
        inbox.PreferenceChange(
            kind=kind.value,
            channel=channel.value,
            enabled=form.get(f"{kind.value}:{channel.value}") == "on",
        )
        for kind in EventKind
        for channel in Channel
    ]
    await inbox.set_preferences(session, opened.user, changes)
    return redirect_done("/settings/notifications", "preferences")


# --- webhooks --------------------------------------------------------------------------


async def webhooks_page(
    request: Request,
    session: AsyncSession,
    opened: OpenSession,
    *,
    notice: str | None = None,
    created: webhooks.CreatedWebhook | None = None,
    url: str = "",
    description: str = "",
    kinds: frozenset[str] = frozenset(),
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        opened,
        "webhooks",
        {
            "hooks": await webhooks.list_webhooks(session, user_id=opened.user.id),
            "created": created,
            "url": url,
            "description": description,
            "chosen_kinds": kinds,
            "kinds": [(kind.value, label) for kind, label in KIND_LABELS.items()],
            "kind_labels": {kind.value: label for kind, label in KIND_LABELS.items()},
            "errors": errors or {},
            "max_url": webhooks.MAX_URL_LENGTH,
            "max_description": webhooks.MAX_DESCRIPTION_LENGTH,
            "max_hooks": webhooks.MAX_WEBHOOKS_PER_USER,
        },
        notice=notice,
        status_code=status_code,
    )


@router.get("/settings/webhooks")
async def webhook_list(
    request: Request,
    session: SessionDep,
    opened: session_auth.SignedIn,
    done: NoticeQuery = None,
) -> Response:
    return await webhooks_page(request, session, opened, notice=done)


@router.post("/settings/webhooks")
async def add_webhook(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    url = field(form, "url").strip()
    description = field(form, "description").strip()
    picked = [value for value in form.getlist("event_kinds") if isinstance(value, str)]
    known = {kind.value: kind for kind in EventKind}
    kinds = [known[value] for value in picked if value in known]
    errors: dict[str, str] = {}
    if not url:
        errors["url"] = "Enter the URL the hub should POST events to (https://…)."
    elif problem := too_long(url, webhooks.MAX_URL_LENGTH, "The URL"):
        errors["url"] = problem
    if problem := too_long(description, webhooks.MAX_DESCRIPTION_LENGTH, "The description"):
        errors["description"] = problem
    if len(kinds) != len(picked):
        errors["event_kinds"] = "Choose event kinds from the list."
    status_code = 422
    created = None
    if not errors:
        try:
            created = await webhooks.register(
                session,
                runtime.vault,
                opened.user,
                url=url,
                description=description,
                event_kinds=kinds,
                allow_private=runtime.settings.webhook_allow_private,
                origin=request_origin(request),
                now=now,
            )
        except ImputehubError as exc:
            key, message = error_of(exc, {"url": "url", "description": "description"}, "url")
            errors[key] = message
            status_code = status_for(exc)
    if created is None:
        return await webhooks_page(
            request,
            session,
            opened,
            url=url[: webhooks.MAX_URL_LENGTH + 100],
            description=description[: webhooks.MAX_DESCRIPTION_LENGTH + 100],
            kinds=frozenset(kind.value for kind in kinds),
            errors=errors,
            status_code=status_code,
        )
    return await webhooks_page(request, session, opened, created=created)


@router.post("/settings/webhooks/{webhook_id}/delete")
async def delete_webhook(
    webhook_id: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    await webhooks.unregister(
        session, opened.user, webhook_id[:100], origin=request_origin(request), now=now
    )
    return redirect_done("/settings/webhooks", "webhook_deleted")

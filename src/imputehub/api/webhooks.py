"""Webhooks: a user's HTTPS endpoints for signed event deliveries.

The signing secret is shown once, in the answer to the registration; later reads never show
it (it is stored encrypted). Another user's webhook is answered as not found.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from imputehub.api.admin import request_origin
from imputehub.api.deps import CurrentUser, Now, RuntimeDep, SessionDep
from imputehub.db.models import Webhook
from imputehub.domain.notifications import EventKind
from imputehub.notify import webhooks

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=webhooks.MAX_URL_LENGTH,
        description="https:// endpoint on a public address; no user name or password in it",
    )
    description: str = Field(default="", max_length=webhooks.MAX_DESCRIPTION_LENGTH)
    event_kinds: list[EventKind] = Field(
        default_factory=list,
        max_length=len(EventKind),
        description="the event kinds to deliver; empty: every kind",
    )


class WebhookPublic(BaseModel):
    id: str
    url: str
    description: str
    event_kinds: list[str]
    is_active: bool = Field(description="false once the receiver answered 410 Gone")
    created_at: datetime
    last_delivery_at: datetime | None
    last_status_code: int | None
    last_error: str | None

    @classmethod
    def of(cls, hook: Webhook) -> WebhookPublic:
        return cls(
            id=hook.id,
            url=hook.url,
            description=hook.description,
            event_kinds=list(hook.event_kinds),
            is_active=hook.is_active,
            created_at=hook.created_at,
            last_delivery_at=hook.last_delivery_at,
            last_status_code=hook.last_status_code,
            last_error=hook.last_error,
        )


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="the signing secret: shown only now; verify X-Imputehub-Signature with it"
    )


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook(
    body: WebhookCreate,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    user: CurrentUser,
    now: Now,
) -> WebhookCreated:
    created = await webhooks.register(
        session,
        runtime.vault,
        user,
        url=body.url,
        description=body.description,
        event_kinds=body.event_kinds,
        allow_private=runtime.settings.webhook_allow_private,
        origin=request_origin(request),
        now=now,
    )
    public = WebhookPublic.of(created.webhook)
    return WebhookCreated(**public.model_dump(), secret=created.secret)


@router.get("", response_model=list[WebhookPublic])
async def list_webhooks(session: SessionDep, user: CurrentUser) -> list[WebhookPublic]:
    return [WebhookPublic.of(h) for h in await webhooks.list_webhooks(session, user_id=user.id)]


@router.get("/{webhook_id}", response_model=WebhookPublic)
async def get_webhook(webhook_id: str, session: SessionDep, user: CurrentUser) -> WebhookPublic:
    hook = await webhooks.get_webhook(session, user_id=user.id, webhook_id=webhook_id)
    return WebhookPublic.of(hook)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(
    webhook_id: str, request: Request, session: SessionDep, user: CurrentUser, now: Now
) -> Response:
    await webhooks.unregister(session, user, webhook_id, origin=request_origin(request), now=now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""In-app notifications (unread first, mark read) and the caller's notification preferences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from imputehub.api.deps import CurrentUser, Now, Offset, SessionDep
from imputehub.db.models import Notification
from imputehub.notify import inbox

router = APIRouter(prefix="/notifications", tags=["notifications"])


class NotificationPublic(BaseModel):
    id: str
    kind: str
    job_id: str | None
    title: str
    body: str
    read: bool
    read_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, note: Notification) -> NotificationPublic:
        return cls(
            id=note.id,
            kind=note.kind,
            job_id=note.job_id,
            title=note.title,
            body=note.body,
            read=note.read_at is not None,
            read_at=note.read_at,
            created_at=note.created_at,
        )


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    total: int = Field(description="notifications matching the filter")
    unread: int = Field(description="all of the caller's unread notifications")
    limit: int
    offset: int


class ReadUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    read: bool = True


class MarkedAllRead(BaseModel):
    marked: int = Field(description="how many notifications were unread")


class PreferencePublic(BaseModel):
    kind: str
    channel: str
    enabled: bool
    default: bool = Field(description="what applies when the user has not chosen")


class PreferenceSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=40, description="an event kind, e.g. job.failed")
    channel: str = Field(max_length=16, description="in_app, email or webhook")
    enabled: bool


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preferences: list[PreferenceSet] = Field(max_length=200)


class PreferencesPublic(BaseModel):
    preferences: list[PreferencePublic]


def _preferences(found: list[inbox.Preference]) -> PreferencesPublic:
    return PreferencesPublic(
        preferences=[
            PreferencePublic(
                kind=p.kind.value, channel=p.channel.value, enabled=p.enabled, default=p.default
            )
            for p in found
        ]
    )


@router.get("", response_model=NotificationPage)
async def list_notifications(
    session: SessionDep,
    user: CurrentUser,
    unread: Annotated[bool, Query(description="only unread notifications")] = False,
    limit: Annotated[int, Query(ge=1, le=inbox.MAX_LIMIT)] = inbox.DEFAULT_LIMIT,
    offset: Offset = 0,
) -> NotificationPage:
    page = await inbox.list_notifications(
        session, user, unread_only=unread, limit=limit, offset=offset
    )
    return NotificationPage(
        items=[NotificationPublic.of(n) for n in page.items],
        total=page.total,
        unread=page.unread,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("/mark-all-read", response_model=MarkedAllRead)
async def mark_all_read(session: SessionDep, user: CurrentUser, now: Now) -> MarkedAllRead:
    return MarkedAllRead(marked=await inbox.mark_all_read(session, user, now=now))


@router.get("/preferences", response_model=PreferencesPublic)
async def get_preferences(session: SessionDep, user: CurrentUser) -> PreferencesPublic:
    return _preferences(await inbox.get_preferences(session, user))


@router.patch("/preferences", response_model=PreferencesPublic)
async def set_preferences(
    body: PreferencesUpdate, session: SessionDep, user: CurrentUser
) -> PreferencesPublic:
    changes = [
        inbox.PreferenceChange(kind=p.kind, channel=p.channel, enabled=p.enabled)
        for p in body.preferences
    ]
    return _preferences(await inbox.set_preferences(session, user, changes))


@router.patch("/{notification_id}/read", response_model=NotificationPublic)
async def set_read(
    notification_id: str,
    session: SessionDep,
    user: CurrentUser,
    now: Now,
    body: ReadUpdate | None = None,
) -> NotificationPublic:
    read = True if body is None else body.read
    note = await inbox.set_read(session, user, notification_id, read=read, now=now)
    return NotificationPublic.of(note)

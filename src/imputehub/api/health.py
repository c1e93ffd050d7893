"""Liveness of the hub (database, workers) and first-run setup."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from imputehub.accounts import users
from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.api.users import UserPublic
from imputehub.db.models import WorkerHeartbeat

router = APIRouter(tags=["health"])


class WorkerHealth(BaseModel):
    alive: int = Field(description="worker processes seen recently")
    last_seen_at: datetime | None


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "error"]
    database: Literal["ok", "error"]
    workers: WorkerHealth


class SetupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    email: str | None = Field(default=None, max_length=254)


@router.get("/health", response_model=HealthResponse)
async def health(runtime: RuntimeDep, now: Now, response: Response) -> HealthResponse:
    # Own session, not SessionDep: a broken database must give a report, not a 500.
    window = timedelta(seconds=max(3 * runtime.settings.worker_poll_interval, 30))
    try:
        async with runtime.db.session() as session:
            await session.execute(text("SELECT 1"))
            row = (
                await session.execute(
                    select(func.count(), func.max(WorkerHeartbeat.last_seen_at)).where(
                        WorkerHeartbeat.last_seen_at > now - window
                    )
                )
            ).one()
    except (SQLAlchemyError, OSError):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthResponse(
            status="error", database="error", workers=WorkerHealth(alive=0, last_seen_at=None)
        )
    alive, last_seen = int(row[0]), row[1]
    return HealthResponse(
        status="ok" if alive else "degraded",
        database="ok",
        workers=WorkerHealth(alive=alive, last_seen_at=last_seen),
    )


@router.post("/setup", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
async def setup(body: SetupRequest, session: SessionDep, now: Now) -> UserPublic:
    user = await users.setup_first_admin(
        session, username=body.username, password=body.password, email=body.email, now=now
    )
    return UserPublic.model_validate(user)

"""Per-user storage quota: stored files plus the declared sizes of unfinished uploads.

An unfinished upload reserves its whole declared size at init, so parallel uploads cannot
together overrun the quota, and completing an upload never needs a second check.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import StoredFile, Upload, User
from imputehub.db.session import lock_row
from imputehub.domain.uploads import UploadStatus, check_quota

# Uploads whose bytes are not (yet) a StoredFile but will be, or are being, stored.
RESERVING = (UploadStatus.OPEN.value, UploadStatus.COMPLETING.value)


async def bytes_in_use(session: AsyncSession, user_id: str) -> int:
    """The user's stored files (inputs and results) plus their unfinished uploads."""
    stored = await session.scalar(
        select(func.coalesce(func.sum(StoredFile.size), 0)).where(StoredFile.user_id == user_id)
    )
    reserved = await session.scalar(
        select(func.coalesce(func.sum(Upload.size), 0)).where(
            Upload.user_id == user_id, Upload.status.in_(RESERVING)
        )
    )
    return int(stored or 0) + int(reserved or 0)


async def require_room(session: AsyncSession, user_id: str, adding: int, quota: int | None) -> None:
    """Refuse `adding` more bytes past the quota (PayloadTooLarge, code quota_exceeded).

    Call it in the transaction that records the new bytes: it locks the user's row, so
    two uploads of one user are checked one after the other.
    """
    if quota is None:
        return
    await lock_row(session, User, user_id)
    check_quota(used=await bytes_in_use(session, user_id), adding=adding, quota=quota)

"""Per-user storage limits: the quota, and the bytes unfinished uploads may reserve.

The quota (IMPUTEHUB_STORAGE_QUOTA_BYTES, off unless set) counts each user's stored files
plus the declared sizes of their unfinished uploads. Apart from it, and always on, the
declared sizes of a user's unfinished uploads alone are capped
(IMPUTEHUB_MAX_PENDING_UPLOAD_BYTES): their parts sit in storage until completed or expired.
An unfinished upload reserves its whole declared size at init, so parallel uploads cannot
together overrun either limit, and completing an upload never needs a second check.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import StoredFile, Upload, User
from imputehub.db.session import lock_row
from imputehub.domain.uploads import UploadStatus, check_pending, check_quota

# Uploads whose bytes are not (yet) a StoredFile but will be, or are being, stored.
RESERVING = (UploadStatus.OPEN.value, UploadStatus.COMPLETING.value)


async def bytes_in_use(session: AsyncSession, user_id: str) -> int:
    """The user's stored files (inputs and results) plus their unfinished uploads."""
    return await _stored(session, user_id) + await pending_bytes(session, user_id)


async def pending_bytes(session: AsyncSession, user_id: str) -> int:
    """The declared sizes of the user's unfinished uploads."""
    reserved = await session.scalar(
        select(func.coalesce(func.sum(Upload.size), 0)).where(
            Upload.user_id == user_id, Upload.status.in_(RESERVING)
        )
    )
    return int(reserved or 0)


async def _stored(session: AsyncSession, user_id: str) -> int:
    stored = await session.scalar(
        select(func.coalesce(func.sum(StoredFile.size), 0)).where(StoredFile.user_id == user_id)
    )
    return int(stored or 0)


async def require_room(session: AsyncSession, user_id: str, adding: int, quota: int | None) -> None:
    """Refuse `adding` more bytes past the quota (PayloadTooLarge, code quota_exceeded).

    Call it in the transaction that records the new bytes: it locks the user's row, so
    two uploads of one user are checked one after the other.
    """
    if quota is None:
        return
    await lock_row(session, User, user_id)
    check_quota(used=await bytes_in_use(session, user_id), adding=adding, quota=quota)


async def reserve_upload(
    session: AsyncSession, user_id: str, size: int, *, quota: int | None, pending_limit: int
) -> None:
    """Refuse a new unfinished upload of `size` bytes past either limit (quota_exceeded).

    The cap on unfinished uploads always applies, the quota when one is set. Call it in
    the transaction that records the upload: it locks the user's row.
    """
    await lock_row(session, User, user_id)
    pending = await pending_bytes(session, user_id)
    check_pending(pending=pending, adding=size, limit=pending_limit)
    if quota is not None:
        used = await _stored(session, user_id) + pending
        check_quota(used=used, adding=size, quota=quota)

"""The worker's cleanup of resumable uploads: expired ones are aborted and forgotten.

Unfinished uploads past `expires_at` lose their parts (and any half-assembled object);
uploads left `aborting` by a failed delete are finished off; completed uploads' rows go
once they expire (their files stay). Several workers may run this at once: rows are
claimed with SKIP LOCKED on PostgreSQL, and every storage step is idempotent.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, delete, or_, select

from imputehub.db.models import Upload
from imputehub.domain.uploads import UploadStatus
from imputehub.files.chunked import free_storage
from imputehub.runtime import Runtime

log = logging.getLogger(__name__)

BATCH = 100


async def clean_up_uploads(runtime: Runtime, *, now: datetime, limit: int = BATCH) -> int:
    """Drop up to `limit` expired or abandoned uploads; how many were removed."""
    due = or_(
        and_(Upload.status == UploadStatus.OPEN.value, Upload.expires_at <= now),
        and_(
            Upload.status == UploadStatus.COMPLETING.value,
            Upload.expires_at <= now,
            # Only once the completing request has let go (crashed or gone).
            or_(Upload.completing_until.is_(None), Upload.completing_until <= now),
        ),
        Upload.status == UploadStatus.ABORTING.value,
        and_(Upload.status == UploadStatus.COMPLETED.value, Upload.expires_at <= now),
    )
    async with runtime.db.session() as session:
        rows = list(
            await session.scalars(
                select(Upload)
                .where(due)
                .order_by(Upload.expires_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        unfinished = []
        finished = []
        for upload in rows:
            if upload.status == UploadStatus.COMPLETED:
                finished.append(upload.id)
            else:
                # Marked first, so a part arriving now is refused and cleans up after itself.
                upload.status = UploadStatus.ABORTING.value
                upload.updated_at = now
                unfinished.append((upload.id, upload.storage_key, upload.storage_handle))
    removed = list(finished)
    for upload_id, key, handle in unfinished:
        try:
            await free_storage(runtime.storage, key, handle)
        except Exception:
            # Left `aborting`: the next round tries again.
            log.exception(
                "could not free an expired upload's storage",
                extra={"action": "upload_cleanup_failed", "upload_id": upload_id},
            )
            continue
        removed.append(upload_id)
        log.info("upload expired", extra={"action": "upload_expired", "upload_id": upload_id})
    if removed:
        async with runtime.db.session() as session:
            await session.execute(delete(Upload).where(Upload.id.in_(removed)))
    return len(removed)

"""Resumable upload rules: part sizes and counts, which parts are due, expiry. No I/O.

A file of `size` bytes travels as `part_count` parts of `part_size` bytes each; only the
last part may be smaller (it holds the remainder). Indexes are 0-based.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from imputehub.domain.errors import InvalidInput, PayloadTooLarge

KiB = 1024
MiB = 1024 * KiB
DEFAULT_PART_SIZE = 8 * MiB
MAX_PART_SIZE = 64 * MiB
# Used when a storage backend states no minimum of its own.
FALLBACK_MIN_PART_SIZE = 1 * MiB
# S3's limit; kept on every backend so a plan made for one works on all.
FALLBACK_MAX_PART_COUNT = 10_000

_SHA256 = re.compile(r"[0-9a-f]{64}")


class UploadStatus(enum.StrEnum):
    OPEN = "open"  # parts may arrive
    COMPLETING = "completing"  # one request is assembling and checking the file
    COMPLETED = "completed"  # the file exists; completing again returns it
    ABORTING = "aborting"  # being dropped; its storage is freed next


def part_count(size: int, part_size: int) -> int:
    return -(-size // part_size)


def choose_part_size(
    size: int,
    requested: int | None,
    *,
    min_part_size: int,
    max_part_count: int = FALLBACK_MAX_PART_COUNT,
) -> int:
    """The part size of a new upload: the client's choice if it fits, else the default.

    The default grows (in whole MiB) when 8 MiB parts would be more than the backend
    allows; a requested size outside [min_part_size, 64 MiB] or that needs too many
    parts is refused, so the client never sends parts of a size it did not expect.
    """
    floor = min(min_part_size, MAX_PART_SIZE)
    if requested is not None:
        if not floor <= requested <= MAX_PART_SIZE:
            raise InvalidInput(
                f"part_size must be between {floor} and {MAX_PART_SIZE} bytes",
                field="part_size",
            )
        if part_count(size, requested) > max_part_count:
            raise InvalidInput(
                f"a part_size of {requested} bytes makes more than {max_part_count} parts; "
                f"use at least {smallest_part_size(size, max_part_count)} bytes",
                field="part_size",
            )
        return requested
    needed = smallest_part_size(size, max_part_count)
    chosen = max(DEFAULT_PART_SIZE, floor, part_count(needed, MiB) * MiB)
    if chosen > MAX_PART_SIZE:
        raise PayloadTooLarge(
            f"a file of {size} bytes needs more than {max_part_count} parts of "
            f"{MAX_PART_SIZE} bytes",
            limit=MAX_PART_SIZE * max_part_count,
        )
    return chosen


def smallest_part_size(size: int, max_part_count: int) -> int:
    return part_count(size, max_part_count)


def expected_part_size(size: int, part_size: int, index: int) -> int:
    """How many bytes part `index` must have; InvalidInput for an index out of range."""
    count = part_count(size, part_size)
    if not 0 <= index < count:
        raise InvalidInput(
            f"part index {index} is out of range: this upload has parts 0 to {count - 1}",
            field="index",
        )
    if index < count - 1:
        return part_size
    return size - part_size * (count - 1)


def check_part_length(expected: int, declared: int) -> None:
    """Refuse a part whose length is known (Content-Length, or counted) and wrong."""
    if declared > expected:
        raise PayloadTooLarge(
            f"the part has {declared} bytes, more than the {expected} bytes it must have",
            limit=expected,
        )
    if declared != expected:
        raise InvalidInput(
            f"the part has {declared} bytes but must have exactly {expected} bytes",
            code="part_size_mismatch",
        )


def missing_parts(count: int, present: Iterable[int]) -> list[int]:
    have = set(present)
    return [index for index in range(count) if index not in have]


def is_expired(expires_at: datetime, now: datetime) -> bool:
    return expires_at <= now


def expiry(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


def normalise_sha256(value: str, *, field: str = "sha256") -> str:
    """A SHA-256 as 64 lower-case hex digits; InvalidInput otherwise."""
    digest = value.strip().lower()
    if not _SHA256.fullmatch(digest):
        raise InvalidInput(f"{field} must be 64 hexadecimal digits", field=field)
    return digest


def check_quota(*, used: int, adding: int, quota: int | None) -> None:
    """Refuse `adding` bytes when the user's stored and reserved bytes would pass the quota."""
    if quota is None or used + adding <= quota:
        return
    free = max(quota - used, 0)
    raise PayloadTooLarge(
        f"this upload of {adding} bytes would exceed your storage quota of {quota} bytes "
        f"({used} bytes in use, {free} free); delete files or finish or abort uploads first",
        code="quota_exceeded",
        limit=quota,
    )


def check_pending(*, pending: int, adding: int, limit: int) -> None:
    """Refuse a new upload when the user's unfinished uploads would declare over `limit` bytes.

    Applies with or without a storage quota: parts are stored as they arrive, so this
    bounds what one user's never-finished uploads can hold in storage.
    """
    if pending + adding <= limit:
        return
    raise PayloadTooLarge(
        f"this upload of {adding} bytes would take your unfinished uploads past the limit "
        f"of {limit} bytes (IMPUTEHUB_MAX_PENDING_UPLOAD_BYTES; {pending} bytes already "
        "declared); finish or abort uploads first",
        code="quota_exceeded",
        limit=limit,
    )

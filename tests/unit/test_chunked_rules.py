"""Resumable upload rules, as tables: part plans, part sizes, missing parts, quota."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imputehub.domain.errors import InvalidInput, PayloadTooLarge
from imputehub.domain.uploads import (
    DEFAULT_PART_SIZE,
    MAX_PART_SIZE,
    MiB,
    check_part_length,
    check_pending,
    check_quota,
    choose_part_size,
    expected_part_size,
    expiry,
    is_expired,
    missing_parts,
    normalise_sha256,
    part_count,
)


@pytest.mark.parametrize(
    ("size", "part_size", "count"),
    [(1, 10, 1), (10, 10, 1), (11, 10, 2), (20, 10, 2), (21, 10, 3), (8 * MiB + 1, 8 * MiB, 2)],
)
def test_part_count(size: int, part_size: int, count: int) -> None:
    assert part_count(size, part_size) == count


@pytest.mark.parametrize(
    ("size", "requested", "min_part", "max_count", "chosen"),
    [
        (100, None, 1, 10_000, DEFAULT_PART_SIZE),  # small files: one part, the default size
        (100, 10, 1, 10_000, 10),
        (100, 10, 10, 10_000, 10),
        (20 * MiB, 5 * MiB, 5 * MiB, 10_000, 5 * MiB),  # S3's floor is allowed
        (100, MAX_PART_SIZE, 1, 10_000, MAX_PART_SIZE),
        # 8 MiB parts would be too many: the default grows, in whole MiB.
        (1000 * MiB, None, 1, 100, 10 * MiB),
        (1000 * MiB + 1, None, 1, 100, 11 * MiB),
        # A backend whose floor is above the default.
        (100, None, 16 * MiB, 10_000, 16 * MiB),
    ],
)
def test_choose_part_size(
    size: int, requested: int | None, min_part: int, max_count: int, chosen: int
) -> None:
    assert choose_part_size(size, requested, min_part_size=min_part, max_part_count=max_count) == (
        chosen
    )


@pytest.mark.parametrize(
    ("size", "requested", "min_part", "max_count", "message"),
    [
        (100, 4, 5, 10_000, "part_size must be between 5 and"),
        (100, MAX_PART_SIZE + 1, 1, 10_000, "part_size must be between 1 and"),
        (20 * MiB, 1 * MiB, 5 * MiB, 10_000, "between 5242880 and"),
        (1000, 10, 1, 50, "more than 50 parts; use at least 20 bytes"),
    ],
)
def test_choose_part_size_refuses(
    size: int, requested: int, min_part: int, max_count: int, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        choose_part_size(size, requested, min_part_size=min_part, max_part_count=max_count)
    assert caught.value.extra["field"] == "part_size"


def test_a_file_too_big_for_any_plan_is_payload_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        choose_part_size(MAX_PART_SIZE * 10 + 1, None, min_part_size=1, max_part_count=10)


@pytest.mark.parametrize(
    ("size", "part_size", "index", "expected"),
    [(25, 10, 0, 10), (25, 10, 1, 10), (25, 10, 2, 5), (20, 10, 1, 10), (1, 10, 0, 1)],
)
def test_expected_part_size(size: int, part_size: int, index: int, expected: int) -> None:
    assert expected_part_size(size, part_size, index) == expected


@pytest.mark.parametrize(("size", "index"), [(25, 3), (25, -1), (20, 2), (1, 1)])
def test_expected_part_size_refuses_indexes_out_of_range(size: int, index: int) -> None:
    with pytest.raises(InvalidInput, match="out of range") as caught:
        expected_part_size(size, 10, index)
    assert caught.value.extra["field"] == "index"


def test_check_part_length() -> None:
    check_part_length(10, 10)
    with pytest.raises(PayloadTooLarge):
        check_part_length(10, 11)
    with pytest.raises(InvalidInput) as caught:
        check_part_length(10, 9)
    assert caught.value.code == "part_size_mismatch"


@pytest.mark.parametrize(
    ("count", "present", "missing"),
    [(3, [], [0, 1, 2]), (3, [2, 0], [1]), (3, [0, 1, 2], []), (3, [0, 0, 5], [1, 2])],
)
def test_missing_parts(count: int, present: list[int], missing: list[int]) -> None:
    assert missing_parts(count, present) == missing


def test_expiry_and_is_expired() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expires = expiry(now, 60)
    assert expires == now + timedelta(seconds=60)
    assert not is_expired(expires, now + timedelta(seconds=59))
    assert is_expired(expires, now + timedelta(seconds=60))


@pytest.mark.parametrize("value", ["A" * 64, " " + "0" * 64 + "\n", "abcdef" + "0" * 58])
def test_normalise_sha256_accepts(value: str) -> None:
    assert normalise_sha256(value) == value.strip().lower()


@pytest.mark.parametrize("value", ["", "0" * 63, "0" * 65, "g" * 64, "0x" + "0" * 62])
def test_normalise_sha256_refuses(value: str) -> None:
    with pytest.raises(InvalidInput, match="64 hexadecimal digits"):
        normalise_sha256(value, field="X-Part-SHA256")


@pytest.mark.parametrize(
    ("used", "adding", "quota"), [(0, 10, None), (0, 10, 10), (5, 5, 10), (10**15, 1, None)]
)
def test_check_quota_allows(used: int, adding: int, quota: int | None) -> None:
    check_quota(used=used, adding=adding, quota=quota)


def test_check_quota_refuses_with_a_clear_message() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        check_quota(used=7, adding=5, quota=10)
    assert caught.value.code == "quota_exceeded"
    assert caught.value.extra["limit"] == 10
    assert "quota of 10 bytes (7 bytes in use, 3 free)" in caught.value.message


@pytest.mark.parametrize(
    ("pending", "adding", "limit", "allowed"),
    [(0, 10, 10, True), (4, 6, 10, True), (0, 11, 10, False), (10, 1, 10, False)],
)
def test_check_pending(pending: int, adding: int, limit: int, allowed: bool) -> None:
    if allowed:
        check_pending(pending=pending, adding=adding, limit=limit)
        return
    with pytest.raises(PayloadTooLarge) as caught:
        check_pending(pending=pending, adding=adding, limit=limit)
    assert caught.value.code == "quota_exceeded"
    assert caught.value.extra["limit"] == limit
    assert "IMPUTEHUB_MAX_PENDING_UPLOAD_BYTES" in caught.value.message

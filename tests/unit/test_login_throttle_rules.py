"""The rules without I/O behind login throttling and API rate limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from imputehub.accounts.throttle import Policy, Source, backoff_seconds
from imputehub.monitoring.ratelimit import ApiLimiter, parse

NOW = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "wait"),
    [(0, 0), (5, 0), (6, 1), (7, 2), (8, 4), (14, 256), (15, 512), (16, 900), (10**9, 900)],
)
def test_backoff_doubles_past_the_free_failures_up_to_the_maximum(failures: int, wait: int) -> None:
    assert backoff_seconds(failures, Policy(free_failures=5, max_seconds=900)) == wait


def test_throttle_keys_are_digests_not_the_names_typed() -> None:
    keys = Source(address="192.0.2.9", account="my password by mistake").keys()
    assert len(set(keys)) == 3
    assert all(len(key) == 64 and "password" not in key for key in keys)


def test_made_up_bearers_share_their_address_budget_until_one_works() -> None:
    limiter = ApiLimiter(parse("3/minute"))
    assert [limiter.hit(f"Bearer made-up-{i}", "192.0.2.9", NOW).allowed for i in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert limiter.hit("Bearer good", "198.51.100.1", NOW).allowed
    limiter.answered("Bearer good", 200)
    # Proven: only its own count now, not 192.0.2.9's or 198.51.100.1's.
    assert [limiter.hit("Bearer good", "192.0.2.9", NOW).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    limiter.answered("Bearer good", 401)  # revoked: back to its address's budget
    later = NOW.replace(minute=1)
    for _ in range(3):
        assert limiter.hit("Bearer good", "192.0.2.9", later).allowed
    assert not limiter.hit(None, "192.0.2.9", later).allowed


def test_proven_bearers_are_remembered_up_to_a_bound() -> None:
    limiter = ApiLimiter(parse("1/minute"), remember=2)
    for name in ("a", "b", "c"):
        limiter.answered(f"Bearer {name}", 200)
    # "a" was forgotten: it draws on its address's budget again, "b" and "c" do not.
    assert limiter.hit("Bearer b", "192.0.2.9", NOW).allowed
    assert limiter.hit("Bearer c", "192.0.2.9", NOW).allowed
    assert limiter.hit("Bearer a", "192.0.2.9", NOW).allowed  # the address's one call
    assert not limiter.hit("Bearer d", "192.0.2.9", NOW).allowed

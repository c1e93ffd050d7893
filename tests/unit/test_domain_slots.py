"""Service slots: the limit per account, the fair order of waiting jobs, a job's standing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imputehub.domain.slots import SlotWait, Waiting, fair_order, ordinal, slot_limit, standing

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def waiting(*jobs: tuple[str, str]) -> list[Waiting]:
    """(job id, user) pairs, in order of arrival."""
    return [
        Waiting(job_id=job, user_id=user, created_at=T0 + timedelta(minutes=n))
        for n, (job, user) in enumerate(jobs)
    ]


@pytest.mark.parametrize(
    ("api_type", "api_config", "expected"),
    [
        ("michigan", {}, 2),  # Cloudgene's default
        ("michigan", {"max_jobs_per_user": 3}, 3),  # TOPMed
        ("ga4gh_wes", {}, None),  # no limit known
        ("ga4gh_wes", {"max_jobs_per_user": 5}, 5),  # an admin's choice
        ("michigan", {"max_jobs_per_user": 0}, 2),  # nonsense falls back
        ("michigan", {"max_jobs_per_user": True}, 2),
        ("michigan", {"max_jobs_per_user": "4"}, 2),
    ],
)
def test_the_limit_per_account(api_type: str, api_config: dict, expected: int | None) -> None:
    assert slot_limit(api_type, api_config) == expected


@pytest.mark.parametrize(
    ("jobs", "held", "expected"),
    [
        # One user: oldest first.
        ([("a1", "a"), ("a2", "a"), ("a3", "a")], {}, ["a1", "a2", "a3"]),
        # Round-robin between users, each user's oldest first.
        ([("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")], {}, ["a1", "b1", "a2", "a3"]),
        ([("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b")], {}, ["a1", "b1", "a2", "b2"]),
        # Jobs a user already has at the service count against their turn.
        ([("a1", "a"), ("b1", "b")], {"a": 2}, ["b1", "a1"]),
        ([("a1", "a"), ("b1", "b"), ("b2", "b")], {"a": 1}, ["b1", "a1", "b2"]),
        # Equal turns: the older job first, whoever owns it.
        ([("b1", "b"), ("a1", "a")], {"a": 1, "b": 1}, ["b1", "a1"]),
        ([], {"a": 3}, []),
    ],
)
def test_slots_go_round_robin_by_user_then_oldest_first(
    jobs: list[tuple[str, str]], held: dict[str, int], expected: list[str]
) -> None:
    assert fair_order(waiting(*jobs), held) == expected


@pytest.mark.parametrize(
    ("job", "in_use", "limit", "expected"),
    [
        ("j1", 0, 2, None),  # free slots, first in line
        ("j2", 0, 2, None),
        ("j3", 0, 2, SlotWait(in_use=2, limit=2, place=1)),  # the free slots are j1's and j2's
        ("j1", 2, 2, SlotWait(in_use=2, limit=2, place=1)),
        ("j3", 2, 2, SlotWait(in_use=2, limit=2, place=3)),
        ("j2", 1, 2, SlotWait(in_use=2, limit=2, place=1)),
        ("j1", 3, 2, SlotWait(in_use=3, limit=2, place=1)),  # the limit was lowered
    ],
)
def test_a_job_s_standing(job: str, in_use: int, limit: int, expected: SlotWait | None) -> None:
    assert standing(["j1", "j2", "j3"], job, in_use=in_use, limit=limit) == expected


def test_the_wait_says_where_the_job_stands() -> None:
    wait = SlotWait(in_use=2, limit=2, place=3)
    assert wait.message("Michigan") == (
        "waiting for a free slot at Michigan: 2 of 2 in use; 3rd in line"
    )


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (101, "101st"),
        (111, "111th"),
    ],
)
def test_ordinals(n: int, text: str) -> None:
    assert ordinal(n) == text

"""A Michigan JobResponse read into the hub's terms: state, place in queue, deletion date."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from imputehub.connectors.base import ExternalState
from imputehub.connectors.michigan.states import deleted_on, to_status

NOTICE = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answer", "state", "position"),
    [
        ({"state": 1, "positionInQueue": 0}, ExternalState.QUEUED, 1),
        ({"state": 1, "positionInQueue": 4}, ExternalState.QUEUED, 5),
        ({"state": 1, "positionInQueue": -1}, ExternalState.QUEUED, None),
        ({"state": 2, "positionInQueue": -1}, ExternalState.RUNNING, None),
        ({"state": 3}, ExternalState.RUNNING, None),
        ({"state": 4}, ExternalState.COMPLETED, None),
        ({"state": 8}, ExternalState.COMPLETED, None),  # success, retire notice sent
        ({"state": 5}, ExternalState.FAILED, None),
        ({"state": 6}, ExternalState.CANCELLED, None),
        ({"state": 7}, ExternalState.FAILED, None),
        ({"state": 99}, ExternalState.RUNNING, None),  # unknown: still running
    ],
)
def test_states_and_the_place_in_the_server_s_queue(
    answer: dict[str, Any], state: ExternalState, position: int | None
) -> None:
    status = to_status(answer)
    assert (status.state, status.queue_position) == (state, position)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (int(NOTICE.timestamp() * 1000), NOTICE),
        (str(int(NOTICE.timestamp() * 1000)), NOTICE),
        (0, None),  # no retire notice yet
        (None, None),
        (-5, None),
        ("soon", None),
        (10**20, None),  # beyond any date: ignored, not a crash
    ],
)
def test_deleted_on_is_when_the_server_deletes_the_results(
    value: object, expected: datetime | None
) -> None:
    assert deleted_on({"state": 8, "deletedOn": value}) == expected
    assert to_status({"state": 8, "deletedOn": value}).results_deleted_at == expected


def test_an_answer_without_deleted_on_says_nothing_about_deletion() -> None:
    assert to_status({"state": 4}).results_deleted_at is None

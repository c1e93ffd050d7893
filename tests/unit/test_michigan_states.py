"""A Michigan JobResponse read into the hub's terms: state, place in queue, deletion date."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from imputehub.connectors.base import ExternalState
from imputehub.connectors.michigan.states import (
    MAX_MESSAGE_CHARS,
    deleted_on,
    html_to_text,
    to_status,
)

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


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<b>Imputation</b> finished.<br/>Chunks: <i>3</i>", "Imputation finished.\nChunks: 3"),
        ("one<br>two<BR />three<br\t/ >four</p>five", "one\ntwo\nthree\nfour\nfive"),
        ("a &lt; b &amp;&amp; c", "a < b && c"),
        ("a < b", "a < b"),  # no tag closes: the rest is text, as `<[^>]*>` leaves it
        ("<<x>y", "y"),
        ("<p>  lots   of\tspace  </p>", "lots of space"),
        ("", ""),
    ],
)
def test_step_messages_are_plain_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


HOSTILE = [
    "<" * 1_000_000,  # `<[^>]*>` tried from every `<` to the end: quadratic
    "<br" + " " * 1_000_000 + "x",  # two `\s*` around an optional `/`: quadratic
    ("<" + " " * 50) * 20_000,
    "<a " + "<" * 999_000 + ">",
]


@pytest.mark.timeout(10)  # the quadratic patterns took minutes on these; now milliseconds
@pytest.mark.parametrize("markup", HOSTILE, ids=["lt-run", "br-spaces", "lt-spaces", "one-tag"])
def test_a_megabyte_of_hostile_markup_is_read_in_linear_time(markup: str) -> None:
    text = html_to_text(markup)

    assert len(text) <= MAX_MESSAGE_CHARS + 4  # cut, and marked so
    assert text.endswith("[…]") or text == ""


def test_a_long_message_is_cut_and_says_so() -> None:
    text = html_to_text("x" * (MAX_MESSAGE_CHARS + 10))
    assert text == "x" * MAX_MESSAGE_CHARS + " […]"

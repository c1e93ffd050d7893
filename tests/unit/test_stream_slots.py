"""Places for live event streams: a cap per user, freed once per lease."""

from __future__ import annotations

import pytest

from imputehub.notify.stream_slots import StreamSlots, TooManyStreams


def test_each_user_has_the_limit_and_a_release_frees_one_place() -> None:
    slots = StreamSlots()
    first = slots.take("alice", limit=2)
    slots.take("alice", limit=2)
    with pytest.raises(TooManyStreams) as caught:
        slots.take("alice", limit=2)
    assert caught.value.code == "too_many_streams"
    assert caught.value.extra["limit"] == 2
    assert "IMPUTEHUB_MAX_STREAMS_PER_USER" in caught.value.message
    slots.take("bob", limit=2)  # counted apart

    first.release()
    first.release()  # a second release frees nothing more
    slots.take("alice", limit=2)
    with pytest.raises(TooManyStreams):
        slots.take("alice", limit=2)


def test_released_users_are_forgotten() -> None:
    slots = StreamSlots()
    slots.take("alice", limit=1).release()
    assert slots.open == {}

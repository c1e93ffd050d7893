"""The command line's reading of server-sent events, as the HTML standard defines it."""

from __future__ import annotations

from imputehub.cli.sse import ServerEvent, parse


def test_messages_fields_comments_and_resume_points() -> None:
    lines = [
        "retry: 3000",
        "",
        ": keep-alive",
        "",
        "id: 7",
        "event: job.queued",
        'data: {"a":1}',
        "",
        "event: job.progress",
        "data:first",
        "data: second",
        "",
        "id: 8",
        "data: x",  # no blank line after it: an unfinished message is dropped
    ]
    assert list(parse(lines)) == [
        ServerEvent(event="job.queued", data='{"a":1}', id="7"),
        ServerEvent(event="job.progress", data="first\nsecond", id=None),
    ]


def test_a_message_without_event_is_a_message() -> None:
    assert list(parse(["data: hi", ""])) == [ServerEvent(event="message", data="hi", id=None)]

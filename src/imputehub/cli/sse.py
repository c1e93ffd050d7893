"""Reading a server-sent event stream (text/event-stream) line by line, as the spec says."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ServerEvent:
    event: str
    data: str
    id: str | None  # None: the message carried no id (the resume point stays)


def parse(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """The messages in `lines` (without line ends); comments and `retry:` are skipped."""
    event, event_id = "", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data or event:
                yield ServerEvent(event=event or "message", data="\n".join(data), id=event_id)
            event, data, event_id = "", [], None
            continue
        if line.startswith(":"):
            continue  # a keep-alive comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value

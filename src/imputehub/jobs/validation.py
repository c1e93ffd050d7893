"""The rules a new job's parameters must meet, as plain functions over plain values.

Each raises InvalidInput with a message a researcher can act on (and the offending field);
the use case in `jobs/create.py` feeds them what it loaded from the database.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import TypeVar

from imputehub.domain.errors import InvalidInput

MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_INPUT_FILES = 100
MAX_POPULATION = 32

E = TypeVar("E", bound=enum.StrEnum)


def choice(kind: type[E], value: str, *, field: str) -> E:
    """`value` as a member of `kind`, or a message listing the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidInput(f"{field} must be one of: {allowed}", field=field) from None


def name(value: str) -> str:
    cleaned = " ".join(value.split())
    if not cleaned:
        raise InvalidInput("the job needs a name", field="name")
    if len(cleaned) > MAX_NAME:
        raise InvalidInput(f"the job name is longer than {MAX_NAME} characters", field="name")
    return cleaned


def description(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"the description is longer than {MAX_DESCRIPTION} characters", field="description"
        )
    return text


def r2_filter(value: float | None) -> float | None:
    if value is None:
        return None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise InvalidInput("r2_filter must be between 0 and 1", field="r2_filter")
    return value


def input_file_ids(ids: Sequence[str]) -> tuple[str, ...]:
    """The ids in order; at least one, at most MAX_INPUT_FILES, none twice."""
    if not ids:
        raise InvalidInput("the job needs at least one input file", field="input_file_ids")
    if len(ids) > MAX_INPUT_FILES:
        raise InvalidInput(
            f"a job takes at most {MAX_INPUT_FILES} input files", field="input_file_ids"
        )
    seen: set[str] = set()
    for file_id in ids:
        if file_id in seen:
            raise InvalidInput(f"file {file_id} is listed twice", field="input_file_ids")
        seen.add(file_id)
    return tuple(ids)


def build(value: str, *, panel_slug: str, panel_build: str, service_builds: Iterable[str]) -> str:
    """The build must be the panel's, and one the service accepts when it lists any."""
    offered = list(service_builds)
    if offered and value not in offered:
        raise InvalidInput(
            f"the service accepts build(s) {', '.join(offered)}, not {value}", field="build"
        )
    if value != panel_build:
        raise InvalidInput(
            f"reference panel '{panel_slug}' offers build {panel_build} only, not {value}",
            field="build",
        )
    return value


def population(
    value: str | None, *, panel_slug: str, panel_populations: Sequence[str]
) -> str | None:
    """A population the panel lists (matched case-insensitively), or none at all.

    A panel that lists no populations accepts any label and leaves it to the service.
    """
    label = (value or "").strip()
    if not label:
        return None
    if len(label) > MAX_POPULATION:
        raise InvalidInput(
            f"population is longer than {MAX_POPULATION} characters", field="population"
        )
    if not panel_populations:
        return label
    for listed in panel_populations:
        if str(listed).lower() == label.lower():
            return str(listed)
    raise InvalidInput(
        f"reference panel '{panel_slug}' does not list population '{label}' "
        f"(it lists: {', '.join(str(p) for p in panel_populations)})",
        field="population",
    )

"""The rules a new job's parameters must meet, as plain functions over plain values.

Each raises InvalidInput with a message a researcher can act on (and the offending field);
the use case in `jobs/create.py` feeds them what it loaded from the database.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from imputehub.domain import vcf
from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import JobMode, Phasing

MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_INPUT_FILES = 100
MAX_POPULATION = 32
# The Michigan imputation servers refuse smaller inputs (their own limit and wording).
MICHIGAN_MIN_SAMPLES = 20
SHOWN_PROBLEMS = 3
# A QC-only job phases nothing, yet Michigan-type servers read `phasing` even then: their
# input validation refuses unphased data when it is `no_phasing` (or empty), before QC
# starts. A QC-only job that names no method therefore gets the servers' own default.
QC_ONLY_PHASING = Phasing.EAGLE

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


def phasing(value: str | None, *, mode: JobMode) -> Phasing:
    """The phasing method; required for imputation, QC_ONLY_PHASING when a QC run names none."""
    if value is not None:
        return choice(Phasing, value, field="phasing")
    if mode == JobMode.QC_ONLY:
        return QC_ONLY_PHASING
    allowed = ", ".join(member.value for member in Phasing)
    message = (
        f"phasing is required in imputation mode: choose one of {allowed} "
        "(only a qc_only job may leave it out)"
    )
    # `errors` in the shape of a malformed body's, so clients find the field either way.
    raise InvalidInput(message, field="phasing", errors=[{"field": "phasing", "message": message}])


def offered_phasing(value: Phasing, *, service_slug: str, offered: Sequence[str]) -> Phasing:
    """A phasing method the service offers (`offered`; empty: not known, any goes)."""
    if offered and value.value not in offered:
        raise InvalidInput(
            f"service '{service_slug}' offers no phasing '{value.value}' "
            f"(it offers: {', '.join(offered)})",
            field="phasing",
        )
    return value


def offered_r2_filter(
    value: float | None, *, service_slug: str, offered: Sequence[float]
) -> float | None:
    """An r2 filter the service offers (`offered`; empty: not known, any goes); None is
    always fine: the service applies its own default."""
    if value is None or not offered:
        return value
    for listed in offered:
        if math.isclose(value, listed, rel_tol=0.0, abs_tol=1e-9):
            return listed
    raise InvalidInput(
        f"service '{service_slug}' offers no r2_filter {value:g} "
        f"(it offers: {', '.join(format(v, 'g') for v in offered)})",
        field="r2_filter",
    )


def input_file_ids(ids: Sequence[str], *, planned: int = 0) -> tuple[str, ...]:
    """The ids in order; none twice; with `planned` files still to come (a dry run), at
    least one file and at most MAX_INPUT_FILES in all."""
    if not ids and not planned:
        raise InvalidInput("the job needs at least one input file", field="input_file_ids")
    if len(ids) + planned > MAX_INPUT_FILES:
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


_BUILD_SOURCES = {
    "contig_lengths": "its ##contig lengths",
    "assembly": "the assembly its header names",
    "positions": "its positions",
}


INPUT_REJECTED = "input_file_rejected"


def _refuse(filename: str, message: str, report: Mapping[str, Any] | None) -> InvalidInput:
    extra: dict[str, Any] = {"field": "input_file_ids"}
    if report is not None:
        extra["report"] = dict(report)
    return InvalidInput(f"file '{filename}': {message}", code=INPUT_REJECTED, **extra)


def input_report(
    filename: str,
    report: Mapping[str, Any] | None,
    *,
    build: str,
    phasing: str,
    mode: str,
    api_type: str,
) -> None:
    """An input file's pre-flight report must allow the job; else InvalidInput naming it.

    Refused: a file never checked, a file with errors, a build other than the job's, and
    for Michigan-type services fewer than 20 samples and chromosome names of the other
    build; unphased input when the job asks for no phasing.
    """
    if report is None:
        raise _refuse(filename, "the file was not checked; upload it again", None)
    errors = [p for p in report.get("problems", ()) if p.get("severity") == "error"]
    if errors:
        shown = "; ".join(str(p.get("message")) for p in errors[:SHOWN_PROBLEMS])
        more = len(errors) - SHOWN_PROBLEMS
        suffix = f" (and {more} more)" if more > 0 else ""
        raise _refuse(filename, f"the file has errors: {shown}{suffix}", report)
    detected = report.get("build")
    if detected and detected != build:
        source = _BUILD_SOURCES.get(str(report.get("build_source")), "its contents")
        raise _refuse(
            filename,
            f"the file looks like {detected} data (from {source}), but the job's build is {build}",
            report,
        )
    if api_type == "michigan":
        samples = int(report.get("samples") or 0)
        if samples < MICHIGAN_MIN_SAMPLES:
            raise _refuse(
                filename,
                f"it has {samples} sample(s). At least {MICHIGAN_MIN_SAMPLES} samples must be "
                "uploaded.",
                report,
            )
        chromosomes = report.get("chromosomes") or []
        mismatch = vcf.encoding_problem(str(chromosomes[0]), build) if chromosomes else None
        if mismatch is not None:
            raise _refuse(filename, mismatch.message, report)
    share = report.get("phased_share")
    if (
        phasing == Phasing.NO_PHASING
        and mode == JobMode.IMPUTATION
        and share is not None
        and share < 1
    ):
        raise _refuse(
            filename,
            "Your input data is unphased. Please select an algorithm for phasing.",
            report,
        )

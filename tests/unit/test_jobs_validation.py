"""The rules a new job's parameters must meet."""

from __future__ import annotations

import math
import re

import pytest

from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import Build, JobMode, Phasing
from imputehub.jobs import validation


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (Build, "hg19", Build.HG19),
        (Build, "hg38", Build.HG38),
        (Phasing, "eagle", Phasing.EAGLE),
        (Phasing, "no_phasing", Phasing.NO_PHASING),
        (JobMode, "qc_only", JobMode.QC_ONLY),
    ],
)
def test_choice_accepts_members(kind: type, value: str, expected: object) -> None:
    assert validation.choice(kind, value, field="x") == expected


@pytest.mark.parametrize(
    ("kind", "value", "listed"),
    [
        (Build, "hg37", "hg19, hg38"),
        (Build, "HG19", "hg19, hg38"),
        (Phasing, "magic", "eagle, beagle, shapeit, no_phasing"),
        (JobMode, "", "imputation, qc_only"),
    ],
)
def test_choice_lists_the_allowed_values(kind: type, value: str, listed: str) -> None:
    with pytest.raises(InvalidInput, match=listed) as info:
        validation.choice(kind, value, field="build")
    assert info.value.extra["field"] == "build"


def test_name_is_trimmed_and_required() -> None:
    assert validation.name("  chr20   study ") == "chr20 study"
    with pytest.raises(InvalidInput, match="needs a name"):
        validation.name(" \t ")
    with pytest.raises(InvalidInput, match="longer than 200"):
        validation.name("n" * 201)


def test_description() -> None:
    assert validation.description(None) == ""
    assert validation.description("  notes ") == "notes"
    with pytest.raises(InvalidInput, match="longer than"):
        validation.description("d" * (validation.MAX_DESCRIPTION + 1))


@pytest.mark.parametrize("value", [None, 0.0, 0.3, 1.0])
def test_r2_filter_in_range(value: float | None) -> None:
    assert validation.r2_filter(value) == value


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, math.inf])
def test_r2_filter_out_of_range(value: float) -> None:
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        validation.r2_filter(value)


def test_input_file_ids() -> None:
    assert validation.input_file_ids(["a", "b"]) == ("a", "b")
    with pytest.raises(InvalidInput, match="at least one input file"):
        validation.input_file_ids([])
    with pytest.raises(InvalidInput, match="file a is listed twice"):
        validation.input_file_ids(["a", "b", "a"])
    with pytest.raises(InvalidInput, match="at most 100"):
        validation.input_file_ids([str(i) for i in range(101)])


@pytest.mark.parametrize(
    ("value", "panel_build", "service_builds", "message"),
    [
        ("hg19", "hg19", ["hg19", "hg38"], None),
        ("hg38", "hg38", [], None),
        ("hg38", "hg19", ["hg19", "hg38"], "offers build hg19 only, not hg38"),
        ("hg19", "hg19", ["hg38"], "accepts build\\(s\\) hg38, not hg19"),
    ],
)
def test_build(
    value: str, panel_build: str, service_builds: list[str], message: str | None
) -> None:
    if message is None:
        assert (
            validation.build(
                value, panel_slug="p", panel_build=panel_build, service_builds=service_builds
            )
            == value
        )
    else:
        with pytest.raises(InvalidInput, match=message):
            validation.build(
                value, panel_slug="p", panel_build=panel_build, service_builds=service_builds
            )


@pytest.mark.parametrize(
    ("value", "listed", "expected"),
    [
        (None, ["afr", "eur"], None),
        ("", ["afr"], None),
        ("eur", ["afr", "eur"], "eur"),
        ("EUR", ["afr", "eur"], "eur"),
        ("anything", [], "anything"),
    ],
)
def test_population_accepted(value: str | None, listed: list[str], expected: str | None) -> None:
    assert validation.population(value, panel_slug="p", panel_populations=listed) == expected


def test_population_refused() -> None:
    with pytest.raises(
        InvalidInput, match="does not list population 'sas' \\(it lists: afr, eur\\)"
    ):
        validation.population("sas", panel_slug="p", panel_populations=["afr", "eur"])
    with pytest.raises(InvalidInput, match="longer than 32"):
        validation.population("x" * 33, panel_slug="p", panel_populations=[])


@pytest.mark.parametrize(
    ("value", "offered", "message"),
    [
        (Phasing.EAGLE, ["eagle", "no_phasing"], None),
        (Phasing.BEAGLE, [], None),  # not known: the service decides
        (
            Phasing.BEAGLE,
            ["eagle", "no_phasing"],
            "offers no phasing 'beagle' \\(it offers: eagle, no_phasing\\)",
        ),
        (Phasing.SHAPEIT, ["beagle", "eagle", "no_phasing"], "offers no phasing 'shapeit'"),
    ],
)
def test_offered_phasing(value: Phasing, offered: list[str], message: str | None) -> None:
    if message is None:
        assert validation.offered_phasing(value, service_slug="s", offered=offered) == value
    else:
        with pytest.raises(InvalidInput, match=f"service 's' {message}") as caught:
            validation.offered_phasing(value, service_slug="s", offered=offered)
        assert caught.value.extra["field"] == "phasing"


@pytest.mark.parametrize(
    ("value", "offered", "expected"),
    [
        (None, [0.0, 0.3], None),  # not set: the service's default
        (0.3, [0.0, 0.001, 0.1, 0.2, 0.3], 0.3),
        (0.1 + 0.2, [0.0, 0.3], 0.3),  # the same number, whatever its float noise
        (0.05, [], 0.05),  # not known: the service decides
    ],
)
def test_offered_r2_filter_accepted(
    value: float | None, offered: list[float], expected: float | None
) -> None:
    assert validation.offered_r2_filter(value, service_slug="s", offered=offered) == expected


def test_offered_r2_filter_refused_naming_the_choices() -> None:
    with pytest.raises(
        InvalidInput,
        match=re.escape(
            "service 's' offers no r2_filter 0.05 (it offers: 0, 0.001, 0.1, 0.2, 0.3)"
        ),
    ) as caught:
        validation.offered_r2_filter(0.05, service_slug="s", offered=[0, 0.001, 0.1, 0.2, 0.3])
    assert caught.value.extra["field"] == "r2_filter"

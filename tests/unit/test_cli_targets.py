"""`submit --target SERVICE:PANEL[:POPULATION]`: how a target is read, and how the hub's
refusal of a federated job's targets is told (one target a line)."""

from __future__ import annotations

import pytest

from imputehub.cli.submit import TargetSpec, TargetSpecError, parse_target, refused_targets


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("michigan:hapmap-2", TargetSpec(service="michigan", panel="hapmap-2")),
        (
            "michigan:hapmap-2:eur",
            TargetSpec(service="michigan", panel="hapmap-2", population="eur"),
        ),
        (
            " topmed : topmed-r3 : all ",
            TargetSpec(service="topmed", panel="topmed-r3", population="all"),
        ),
        # The service's own panel id (`apps@name@version`) and the hub's ids read as well.
        (
            "michigan:apps@1000g-phase-3-v5@2.0.0",
            TargetSpec(service="michigan", panel="apps@1000g-phase-3-v5@2.0.0"),
        ),
    ],
)
def test_a_target_reads_as_service_panel_and_population(text: str, target: TargetSpec) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "'' names no panel"),
        ("michigan", "'michigan' names no panel"),
        (":hapmap-2", "has an empty service"),
        ("michigan:", "has an empty panel"),
        ("michigan: :eur", "has an empty panel"),
        ("michigan:hapmap-2:", "has an empty population"),
        ("michigan:hapmap-2:eur:x", "has 3 colons; give SERVICE:PANEL or SERVICE:PANEL:POPULATION"),
        ("a:b:c:d:e", "has 4 colons"),
    ],
)
def test_a_target_given_wrongly_is_refused_saying_why(text: str, words: str) -> None:
    with pytest.raises(TargetSpecError, match=words):
        parse_target(text)


@pytest.mark.parametrize(
    ("target", "label"),
    [
        (TargetSpec(service="michigan", panel="hapmap-2"), "michigan / hapmap-2"),
        (TargetSpec(service="m", panel="p", population="eur"), "m / p / eur"),
    ],
)
def test_a_target_is_labelled_as_the_hub_names_targets(target: TargetSpec, label: str) -> None:
    assert target.label == label


def test_the_hubs_refusal_names_one_target_a_line() -> None:
    problem = {
        "detail": "the job was not created: ...",
        "targets": [
            {
                "index": 1,
                "service": "michigan",
                "reference_panel": "topmed-panel",
                "message": "reference panel 'topmed-panel' belongs to another service",
            },
            {"index": 2, "service": "nowhere", "reference_panel": "x", "message": "a; b"},
        ],
    }
    assert refused_targets(problem) == [
        "target 2 (michigan / topmed-panel): reference panel 'topmed-panel' belongs to "
        "another service",
        "target 3 (nowhere / x): a; b",
    ]


def test_other_refusals_name_no_target() -> None:
    assert refused_targets({"detail": "at most 5 targets"}) == []
    assert refused_targets({"targets": "not a list of targets"}) == []

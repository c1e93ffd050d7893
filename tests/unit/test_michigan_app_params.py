"""Reading a Michigan server's app params (`GET /api/v2/server/apps/{id}`) into panels."""

from __future__ import annotations

from typing import Any

import pytest

from imputehub.connectors.michigan.connector import app_panels

REFPANEL = {
    "id": "refpanel",
    "type": "app_list",
    "values": [
        {"key": "apps@1000g-phase-3-v5@2.0.0", "value": "1000G Phase 3 v5 (GRCh37/hg19)"},
        {"key": "apps@topmed-r3@1.0.0", "value": "TOPMed r3 (GRCh38/hg38)"},
    ],
}
CLOUDGENE_3 = {  # a list, one entry per panel: what the servers send
    "id": "population",
    "type": "binded_list",
    "bind": "refpanel",
    "values": [
        {
            "key": "apps@1000g-phase-3-v5@2.0.0",
            "label": "1000G Phase 3 v5 (GRCh37/hg19)",
            "value": None,
            "values": [{"key": "afr", "value": "AFR"}, {"key": "eur", "value": "EUR"}],
        },
        {"key": "apps@topmed-r3@1.0.0", "label": "TOPMed r3", "value": None, "values": []},
    ],
}
MAPPING = {  # keyed by panel: read as well
    "id": "population",
    "type": "binded_list",
    "bind": "refpanel",
    "values": {
        "apps@1000g-phase-3-v5@2.0.0": [
            {"key": "afr", "value": "AFR"},
            {"key": "eur", "value": "EUR"},
        ]
    },
}
PHASING = {
    "id": "phasing",
    "type": "list",
    "value": "eagle",
    "values": [{"key": "eagle", "value": "Eagle"}, {"key": "no_phasing", "value": "None"}],
}
R2 = {
    "id": "r2Filter",
    "type": "list",
    "value": "0",
    "values": [{"key": k, "value": k} for k in ("0", "0.001", "0.3", "off-by-one", "7")],
}


@pytest.mark.parametrize("population", [CLOUDGENE_3, MAPPING], ids=["list", "mapping"])
def test_populations_are_bound_to_their_panel(population: dict[str, Any]) -> None:
    panels = {p.panel_id: p for p in app_panels({"params": [REFPANEL, population]})}

    assert panels["apps@1000g-phase-3-v5@2.0.0"].populations == ("afr", "eur")
    assert panels["apps@topmed-r3@1.0.0"].populations == ()
    assert panels["apps@topmed-r3@1.0.0"].build == "hg38"


def test_phasing_and_r2_filters_are_the_app_s_for_every_panel() -> None:
    panels = app_panels({"params": [REFPANEL, CLOUDGENE_3, PHASING, R2]})

    assert {p.phasing for p in panels} == {("eagle", "no_phasing")}
    # Keys that are no r2 between 0 and 1 are not offered as one.
    assert {p.r2_filters for p in panels} == {(0.0, 0.001, 0.3)}


def test_an_app_without_such_params_leaves_the_choices_open() -> None:
    [thousand, topmed] = app_panels({"params": [REFPANEL]})

    assert (thousand.populations, thousand.phasing, thousand.r2_filters) == ((), (), ())
    assert topmed.phasing == ()

"""The panels a user's own credential sees against the hub's: comparison and the sentence."""

from __future__ import annotations

import pytest

from imputehub.registry.credentials import (
    MAX_RECORDED_PANELS,
    PanelAccess,
    compare_panels,
    describe_panel_access,
)

HAPMAP = "apps@hapmap-2@2.0.0"
TOPMED = "apps@topmed-r3@1.0.0"
G1000 = "apps@1000g-phase-3-v5@2.0.0"


@pytest.mark.parametrize(
    ("hub", "seen", "missing", "extra"),
    [
        ([HAPMAP, TOPMED], [HAPMAP, TOPMED], (), ()),
        ([HAPMAP, TOPMED], [TOPMED, HAPMAP, HAPMAP], (), ()),
        ([HAPMAP, TOPMED], [HAPMAP], (TOPMED,), ()),
        ([HAPMAP], [HAPMAP, TOPMED], (), (TOPMED,)),
        ([HAPMAP, TOPMED], [], (HAPMAP, TOPMED), ()),
        ([], [HAPMAP], (), (HAPMAP,)),
        # An unversioned id stands for whichever version the server has installed.
        (["apps@topmed-r3", HAPMAP], [TOPMED, HAPMAP], (), ()),
        (["apps@topmed"], [TOPMED], ("apps@topmed",), (TOPMED,)),
        # A newer version than the hub's is another panel.
        ([TOPMED], ["apps@topmed-r3@2.0.0"], (TOPMED,), ("apps@topmed-r3@2.0.0",)),
    ],
)
def test_compare_panels(
    hub: list[str], seen: list[str], missing: tuple[str, ...], extra: tuple[str, ...]
) -> None:
    assert compare_panels(hub, seen) == PanelAccess(missing=missing, extra=extra)


def test_what_is_recorded_stays_small() -> None:
    seen = [f"apps@p{i}@1.0.0" + "x" * 500 for i in range(200)]

    access = compare_panels([], seen)

    assert len(access.extra) == MAX_RECORDED_PANELS
    assert all(len(panel_id) == 300 for panel_id in access.extra)


@pytest.mark.parametrize(
    ("access", "sentence"),
    [
        (None, None),
        (PanelAccess(), None),
        (
            PanelAccess(missing=(TOPMED,)),
            f"Your account at Michigan does not see 1 of the hub's panels ({TOPMED}): "
            "jobs you submit with your own token cannot use it.",
        ),
        (
            PanelAccess(missing=(TOPMED, HAPMAP, G1000, "apps@x@1"), extra=("apps@y@1",)),
            f"Your account at Michigan does not see 4 of the hub's panels ({TOPMED}, {HAPMAP}, "
            f"{G1000}, …): jobs you submit with your own token cannot use them.",
        ),
        (
            PanelAccess(extra=(TOPMED,)),
            f"Your account at Michigan sees 1 panel the hub does not offer ({TOPMED}).",
        ),
        (
            PanelAccess(extra=(TOPMED, HAPMAP)),
            f"Your account at Michigan sees 2 panels the hub does not offer ({TOPMED}, {HAPMAP}).",
        ),
    ],
)
def test_describe_panel_access(access: PanelAccess | None, sentence: str | None) -> None:
    assert describe_panel_access("Michigan", access) == sentence


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        (None, None),
        ({"missing": [TOPMED], "extra": []}, PanelAccess(missing=(TOPMED,))),
        ({"missing": [], "extra": [HAPMAP]}, PanelAccess(extra=(HAPMAP,))),
        ({"missing": [TOPMED]}, None),
        ({"missing": "apps@x", "extra": []}, None),
        ({"missing": [1], "extra": []}, None),
        ([TOPMED], None),
    ],
)
def test_recorded_access_is_read_back_or_ignored(raw: object, read: PanelAccess | None) -> None:
    assert PanelAccess.from_json(raw) == read
    if read is not None:
        assert PanelAccess.from_json(read.to_json()) == read

"""The console's pure pieces: the health chart's geometry and reading the service form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.datastructures import FormData

from imputehub.db.models import ServiceHealthCheck
from imputehub.registry.service_console import CHART_PAD, _nice_top, health_chart
from imputehub.web.console import service_forms

START = datetime(2026, 1, 1, tzinfo=UTC)


def check(minutes: int, status: str = "healthy", ms: float | None = 100.0) -> ServiceHealthCheck:
    return ServiceHealthCheck(
        service_id="s", checked_at=START + timedelta(minutes=minutes), status=status,
        response_time_ms=ms,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("largest", "top"),
    [(0, 1.0), (0.4, 0.5), (1, 1.0), (42, 50.0), (120, 200.0), (999, 1000.0), (5000, 5000.0)],
)
def test_the_chart_top_is_a_round_figure_at_or_above_the_largest(
    largest: float, top: float
) -> None:
    assert _nice_top(largest) == pytest.approx(top)


def test_the_chart_runs_oldest_to_newest_and_marks_failed_checks() -> None:
    newest_first = [check(10, ms=200.0), check(5, "unhealthy", None), check(0, ms=100.0)]

    chart = health_chart(newest_first, width=100, height=60)

    assert chart.top == 200.0
    assert [p.check.checked_at for p in chart.points] == sorted(c.checked_at for c in newest_first)
    first, failed, last = chart.points
    assert (first.x, last.x) == (CHART_PAD, 100 - CHART_PAD)
    assert last.y == CHART_PAD  # the largest time reaches the top
    assert first.y == pytest.approx(60 - CHART_PAD - (60 - 2 * CHART_PAD) / 2)
    assert failed.failed
    assert failed.y == chart.baseline
    assert chart.failed == 1
    # The line joins only the checks that answered with a time.
    assert chart.line == f"{first.x},{first.y} {last.x},{last.y}"


def test_one_check_sits_in_the_middle() -> None:
    chart = health_chart([check(0, ms=5.0)], width=100, height=60)

    assert chart.points[0].x == 50
    assert chart.failed == 0


@pytest.mark.parametrize(
    ("raw", "size"),
    [("1024", 1024), ("500M", 500 * 1024**2), ("5 GiB", 5 * 1024**3), ("1.5G", 3 * 1024**3 // 2)],
)
def test_sizes_read_with_binary_units(raw: str, size: int) -> None:
    assert service_forms.parse_size(raw) == size


@pytest.mark.parametrize("raw", ["", "lots", "-5", "5X"])
def test_unreadable_sizes_are_none(raw: str) -> None:
    assert service_forms.parse_size(raw) is None


def test_a_form_reads_into_common_values_and_the_kinds_api_config() -> None:
    kind = service_forms.KINDS["ga4gh_wes"]
    form = FormData(
        [
            ("name", "W"),
            ("base_url", "https://w.org"),
            ("supported_builds", "hg38"),
            ("slot_limit", "4"),
            ("cfg_workflow_engine", " cwltool "),
            ("cfg_auth", ""),
            ("cfg_allow_private_urls", "on"),
            ("cfg_extra_params", '{"threads": 4}'),
            ("cfg_panels", "[]"),
        ]
    )

    parsed = service_forms.parse(kind, form, with_credential=False)

    assert parsed.errors == {}
    assert parsed.values["supported_builds"] == ["hg38"]
    assert parsed.values["slug"] is None
    assert parsed.config == {
        "max_jobs_per_user": 4,
        "workflow_engine": "cwltool",
        "allow_private_urls": True,
        "extra_params": {"threads": 4},
        "panels": [],
    }


def test_an_edit_keeps_unshown_keys_and_drops_emptied_shown_ones() -> None:
    kind = service_forms.KINDS["michigan"]
    current = {"app": "old", "aes_encryption": True, "phasing": ["eagle"], "max_jobs_per_user": 3}
    parsed = service_forms.parse(kind, FormData([("cfg_app", "new")]), with_credential=False)

    assert service_forms.merged_config(kind, current, parsed) == {
        "phasing": ["eagle"],
        "app": "new",
    }


def test_wrong_shapes_are_named_by_their_field() -> None:
    kind = service_forms.KINDS["dnastack"]
    form = FormData([("cfg_panels", '{"a": 1}'), ("cfg_params", "[]"), ("job_time_limit", "x")])

    parsed = service_forms.parse(kind, form, with_credential=False)

    assert parsed.errors["cfg_panels"] == "Panels (JSON list) must be a list ([…])."
    assert "must be an object" in parsed.errors["cfg_params"]
    assert "required" in parsed.errors["cfg_namespace"]
    assert "hours" in parsed.errors["job_time_limit"]

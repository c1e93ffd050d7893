"""What the jobs commands make of a job: its step, its times, why it has no results."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imputehub.cli.files import summary, verdict
from imputehub.cli.follow import Printer, current_step, step_names
from imputehub.cli.jobs import clock_time, durations, no_results_reason
from imputehub.cli.main import run
from tests.support.fake_hub import FakeHub

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("logs", "step"),
    [
        ([], None),
        (["started"], None),  # the local runner's own note
        (["started", "Input Validation: started"], "Input Validation"),
        (
            ["Input Validation: started", "Quality Control:   excluded sites: 12"],
            "Quality Control",
        ),
        (["Quality Control: started", "failed: no samples"], "Quality Control"),
        (["WES state: RUNNING", "Phasing and Imputation: 35%"], "Phasing and Imputation"),
        (["WES state: RUNNING"], None),
        (["Quality Control (Report): done"], "Quality Control (Report)"),
        (["stdout: the log at https://wes/x could not be fetched (HTTP 404)"], None),
        (["Summary: 2 files", "the run's process was lost; restarting it"], "Summary"),
    ],
)
def test_the_current_step_is_the_latest_step_message(logs: list[str], step: str | None) -> None:
    assert current_step(logs) == step


def test_step_names_keep_the_order_they_first_appear_in() -> None:
    logs = [
        "started",
        "Input Validation: started",
        "Quality Control: started",
        "Quality Control: 12 excluded",
        "Input Validation: note",
        "Phasing and Imputation: started",
    ]

    assert step_names(logs) == ["Input Validation", "Quality Control", "Phasing and Imputation"]


def test_the_printer_names_every_step_passed_since_its_last_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printer = Printer(clock=lambda: NOW)

    printer.show("queued", 0.0, [])
    printer.show("running", 30.0, ["Input Validation: started", "Quality Control: started"])
    printer.show("running", 30.0, ["Input Validation: started", "Quality Control: started"])
    printer.show("running", 40.0, None)  # a replayed event: the step stays
    printer.show("completed", 100.0, ["Quality Control: started", "Summary: done"])

    assert capsys.readouterr().out.splitlines() == [
        "12:00:00  queued       0.0 %",
        "12:00:00  running     30.0 %  Input Validation → Quality Control",
        "12:00:00  running     40.0 %  Quality Control",
        "12:00:00  completed  100.0 %  Summary",
    ]


def job(**fields: Any) -> dict[str, Any]:
    return {"created_at": "2026-03-01T11:00:00Z", **fields}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"total_time": "1:00:00 (created → now)"}),
        (
            {"started_at": "2026-03-01T11:59:51+00:00"},
            {"run_time": "0:00:09 (started → now)", "total_time": "1:00:00 (created → now)"},
        ),
        (
            {"started_at": "2026-03-01T11:10:00Z", "completed_at": "2026-03-01T11:10:09Z"},
            {"run_time": "0:00:09 (started → ended)", "total_time": "0:10:09 (created → ended)"},
        ),
        (  # cancelled before it ever ran
            {"completed_at": "2026-03-01T11:00:30Z"},
            {"total_time": "0:00:30 (created → ended)"},
        ),
        (  # the hub's clock ahead of ours: never a negative time
            {"started_at": "2026-03-01T12:00:05Z"},
            {"run_time": "0:00:00 (started → now)", "total_time": "1:00:00 (created → now)"},
        ),
    ],
)
def test_durations_say_what_they_measure(fields: dict[str, Any], expected: dict[str, str]) -> None:
    assert durations(job(**fields), NOW) == expected


def test_long_times_count_days() -> None:
    assert clock_time(timedelta(days=1, hours=2, minutes=3, seconds=4.7)) == "1 day, 2:03:04"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"status": "failed", "error_message": "chr20:\n too few samples"},
            "it failed (chr20: too few samples)",
        ),
        ({"status": "failed"}, "it failed"),
        ({"status": "running", "progress_percentage": 42.0}, "it is still running (42 %)"),
        ({"status": "running", "progress_percentage": 42.5}, "it is still running (42.5 %)"),
        ({"status": "queued"}, "it is still queued"),
        ({"status": "pending"}, "it is still pending"),
        ({"status": "cancelling"}, "it is being cancelled"),
        ({"status": "cancelled"}, "it was cancelled"),
        (
            {"status": "completed", "files_expired": True},
            "it completed, but its result files have been deleted (retention)",
        ),
        ({"status": "completed"}, "it completed, but the service returned no result files"),
    ],
)
def test_why_a_job_has_no_results(fields: Mapping[str, Any], reason: str) -> None:
    assert no_results_reason(fields) == reason


@pytest.mark.parametrize(
    ("report", "word"),
    [
        ({"fatal": True, "problems": [{"severity": "error"}]}, "NOT USABLE"),
        ({"problems": [{"severity": "error"}, {"severity": "warning"}]}, "ERRORS (1)"),
        ({"problems": [{"severity": "warning"}, {"severity": "warning"}]}, "ok, 2 warning(s)"),
        ({"problems": []}, "ok"),
    ],
)
def test_a_reports_verdict(report: dict[str, Any], word: str) -> None:
    assert verdict(report) == word


def test_a_reports_summary_reads_the_stored_form() -> None:
    shown = summary(
        {
            "format": "bgzf",
            "bgzf_eof": False,
            "samples": 1200,
            "variants": 5000,
            "snps": 4900,
            "indels": 100,
            "chromosomes": ["20", "21"],
            "build": "hg38",
            "build_source": "assembly",
            "sorted": True,
            "duplicate_records": 0,
            "phased_share": 0.5,
            "missing_share": None,
        }
    )

    assert shown["format"] == "bgzf, no EOF block"
    assert shown["samples"] == "1,200"
    assert shown["variants"] == "5,000 (SNPs 4,900, indels 100, multi-allelic 0, other 0)"
    assert shown["chromosomes"] == "20, 21"
    assert shown["build"] == "hg38 (from the header's assembly)"
    assert (shown["duplicates"], shown["phased"], shown["missing"]) == (None, "50.0 %", None)


def test_watch_without_a_live_stream_polls_and_shows_the_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMPUTEHUB_CLIENT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("IMPUTEHUB_TOKEN", raising=False)
    with FakeHub() as hub:  # an older hub: no /events route
        hub.reply(
            "GET",
            "/api/v1/jobs/j1/progress",
            json={"id": "j1", "status": "completed", "progress_percentage": 100.0},
        )
        steps = ["Input Validation", "Quality Control", "Phasing and Imputation", "Summary"]
        hub.reply(
            "GET",
            "/api/v1/jobs/j1/logs",
            json={"id": "j1", "logs": [f"{step}: started" for step in steps]},
        )

        assert run(["jobs", "watch", "j1", "--url", hub.url]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0].split("  ", 1)[1] == (
        "completed  100.0 %  Input Validation → Quality Control → Phasing and Imputation → Summary"
    )
    assert out[1:] == ["job completed"]

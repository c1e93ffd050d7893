"""The one step timeline: hub updates and service messages sorted onto the four steps."""

from __future__ import annotations

import pytest

from imputehub.domain.job_steps import StepState, Update, timeline
from imputehub.domain.jobs import JobMode, JobStatus

P, Q, R, C, F, X = (
    JobStatus.PENDING,
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
S = StepState


def states(
    status: JobStatus,
    progress: float,
    logs: list[str],
    mode: JobMode = JobMode.IMPUTATION,
) -> list[StepState]:
    return [
        s.state
        for s in timeline(
            status=status, mode=mode, progress=progress, updates=[], service_logs=logs
        )
    ]


@pytest.mark.parametrize(
    ("status", "progress", "logs", "mode", "expected"),
    [
        (P, 0, [], JobMode.IMPUTATION, [S.ACTIVE, S.WAITING, S.WAITING, S.WAITING]),
        (Q, 10, [], JobMode.IMPUTATION, [S.ACTIVE, S.WAITING, S.WAITING, S.WAITING]),
        # Michigan and the local engine name their steps.
        (R, 30, ["Input Validation: ok", "Quality Control: started"], JobMode.IMPUTATION,
         [S.DONE, S.ACTIVE, S.WAITING, S.WAITING]),
        # A WES run names none: "the service is working" is imputation to the user.
        (R, 50, ["WES state: RUNNING"], JobMode.IMPUTATION,
         [S.DONE, S.DONE, S.ACTIVE, S.WAITING]),
        (R, 95, ["Phasing and Imputation: done"], JobMode.IMPUTATION,
         [S.DONE, S.DONE, S.DONE, S.ACTIVE]),
        (C, 100, [], JobMode.IMPUTATION, [S.DONE, S.DONE, S.DONE, S.DONE]),
        (C, 100, [], JobMode.QC_ONLY, [S.DONE, S.DONE, S.SKIPPED, S.DONE]),
        (F, 20, ["Input Validation: ok", "Quality Control: Error: no chunks passed"],
         JobMode.IMPUTATION, [S.DONE, S.FAILED, S.SKIPPED, S.SKIPPED]),
        (F, 0, [], JobMode.IMPUTATION, [S.FAILED, S.SKIPPED, S.SKIPPED, S.SKIPPED]),
        (X, 0, [], JobMode.IMPUTATION, [S.STOPPED, S.SKIPPED, S.SKIPPED, S.SKIPPED]),
    ],
)  # fmt: skip
def test_step_states(
    status: JobStatus,
    progress: float,
    logs: list[str],
    mode: JobMode,
    expected: list[StepState],
) -> None:
    assert states(status, progress, logs, mode) == expected


def test_messages_land_under_their_steps() -> None:
    steps = timeline(
        status=JobStatus.RUNNING,
        mode=JobMode.IMPUTATION,
        progress=60,
        updates=[
            Update(status=P, progress=0, message="job created"),
            Update(status=Q, progress=10, message="queued at Michigan (position 2 in the queue)"),
            Update(status=R, progress=40, message="running at Michigan"),
        ],
        service_logs=[
            "Input Validation: 1 valid VCF file",
            "Quality Control: 812 allele switches",
            "a line without a step",
            "Phasing and Imputation: chunk 1 of 3",
        ],
    )
    by_step = {s.name: [(m.source, m.text) for m in s.messages] for s in steps}
    assert by_step == {
        "Input Validation": [
            ("hub", "job created"),
            ("hub", "queued at Michigan (position 2 in the queue)"),
            ("service", "1 valid VCF file"),
        ],
        "Quality Control": [
            ("service", "812 allele switches"),
            ("service", "a line without a step"),
        ],
        "Phasing and Imputation": [
            ("hub", "running at Michigan"),
            ("service", "chunk 1 of 3"),
        ],
        "Summary": [],
    }


def test_a_long_log_is_bounded() -> None:
    steps = timeline(
        status=JobStatus.RUNNING,
        mode=JobMode.IMPUTATION,
        progress=50,
        updates=[],
        service_logs=[f"Quality Control: {n} " + "x" * 10_000 for n in range(500)],
    )
    assert len(steps[1].messages) == 60
    assert all(len(m.text) <= 2000 for m in steps[1].messages)


def test_repeated_messages_are_shown_once() -> None:
    steps = timeline(
        status=JobStatus.COMPLETED,
        mode=JobMode.QC_ONLY,
        progress=100,
        updates=[
            Update(status=R, progress=20, message="running at the engine"),
            Update(status=R, progress=30, message="running at the engine"),
            Update(status=C, progress=100, message="3 result files stored"),
        ],
        service_logs=[],
    )
    assert [m.text for m in steps[1].messages] == ["running at the engine"]  # QC only
    assert [m.text for m in steps[3].messages] == ["3 result files stored"]

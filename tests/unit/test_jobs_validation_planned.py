"""Job rules added for the dry run and for QC-only jobs: phasing, and files still to come."""

from __future__ import annotations

import pytest

from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import JobMode, Phasing
from imputehub.jobs import validation


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [
        ("beagle", JobMode.IMPUTATION, Phasing.BEAGLE),
        ("no_phasing", JobMode.IMPUTATION, Phasing.NO_PHASING),
        ("no_phasing", JobMode.QC_ONLY, Phasing.NO_PHASING),
        # Michigan servers refuse unphased data with no_phasing even in QC-only mode.
        (None, JobMode.QC_ONLY, Phasing.EAGLE),
    ],
)
def test_phasing(value: str | None, mode: JobMode, expected: Phasing) -> None:
    assert validation.phasing(value, mode=mode) == expected


def test_imputation_needs_phasing_and_says_so() -> None:
    with pytest.raises(InvalidInput) as info:
        validation.phasing(None, mode=JobMode.IMPUTATION)
    assert info.value.message == (
        "phasing is required in imputation mode: choose one of eagle, beagle, shapeit, "
        "no_phasing (only a qc_only job may leave it out)"
    )
    assert info.value.extra["field"] == "phasing"
    assert [e["field"] for e in info.value.extra["errors"]] == ["phasing"]


def test_a_named_phasing_is_still_checked() -> None:
    with pytest.raises(InvalidInput, match="phasing must be one of"):
        validation.phasing("magic", mode=JobMode.QC_ONLY)


@pytest.mark.parametrize(
    ("ids", "planned", "expected"),
    [
        ((), 1, ()),
        (("a",), 0, ("a",)),
        (("a", "b"), 98, ("a", "b")),
        ((), validation.MAX_INPUT_FILES, ()),
    ],
)
def test_files_to_come_count(ids: tuple[str, ...], planned: int, expected: tuple[str, ...]) -> None:
    assert validation.input_file_ids(ids, planned=planned) == expected


@pytest.mark.parametrize(
    ("ids", "planned", "message"),
    [
        ((), 0, "at least one input file"),
        (("a",), validation.MAX_INPUT_FILES, "at most 100 input files"),
        ((), validation.MAX_INPUT_FILES + 1, "at most 100 input files"),
        (("a", "a"), 1, "file a is listed twice"),
    ],
)
def test_files_to_come_are_refused(ids: tuple[str, ...], planned: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validation.input_file_ids(ids, planned=planned)

"""The rules of Michigan result downloads, without I/O: budgets, checksums, notes."""

from __future__ import annotations

from typing import Any

import pytest

from imputehub.connectors.michigan.downloads import (
    Notes,
    damage_verdict,
    left_after_one,
    published_md5,
    refusal,
)
from imputehub.connectors.michigan.results import OutputFile, output_files, with_checksums
from imputehub.domain.errors import PermanentServiceError, TransientServiceError

HEX = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("count", "notes", "refused"),
    [
        (None, Notes(attempts=3), None),  # the server does not say: nothing to budget
        (10, Notes(), None),
        (1, Notes(), None),  # the first download may be the last one
        (2, Notes(attempts=1), None),
        (1, Notes(attempts=1), "an earlier download of it broke off"),
        (1, Notes(attempts=1, damaged=1), "an earlier download of it arrived damaged"),
        (0, Notes(), "its downloads are used up"),
        (0, Notes(attempts=2), "its downloads are used up"),
    ],
)
def test_the_last_download_is_never_spent_on_a_retry(
    count: int | None, notes: Notes, refused: str | None
) -> None:
    reason = refusal("chr_20.zip", count=count, notes=notes)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused in reason
        assert "chr_20.zip" in reason


def test_the_refusal_says_what_is_kept_and_why() -> None:
    assert refusal("chr_1.zip", count=1, notes=Notes(attempts=1)) == (
        "chr_1.zip has 1 download left at the service and an earlier download of it broke off; "
        "imputehub keeps it rather than spend it on a retry that could fail the same way"
    )


@pytest.mark.parametrize(
    ("text", "digest"),
    [
        (f"{HEX}  chr_20.zip\n", HEX),
        (f"{HEX.upper()} *chr_20.zip", HEX),
        (HEX, HEX),
        ("", None),
        ("not a digest  chr_20.zip", None),
        (f"{HEX}00  chr_20.zip", None),
    ],
)
def test_the_digest_of_an_md5sum_line(text: str, digest: str | None) -> None:
    assert published_md5(text) == digest


@pytest.mark.parametrize(
    ("count", "said"),
    [
        (10, "the service allows 9 more downloads of it"),
        (2, "the service allows 1 more download of it"),
        (1, "the service allows 0 more downloads of it"),
        (None, "the service did not say how many downloads of it are left"),
    ],
)
def test_downloads_left_in_words(count: int | None, said: str) -> None:
    assert left_after_one(count) == said


@pytest.mark.parametrize(
    ("notes", "kind", "said"),
    [
        (Notes(), TransientServiceError, "arrived damaged (Bad CRC-32)"),
        (Notes(damaged=1), PermanentServiceError, "arrived damaged twice"),
        (Notes(md5=HEX), PermanentServiceError, "is damaged at the service"),
    ],
)
def test_a_damaged_zip_is_downloaded_again_once_unless_it_passed_its_md5(
    notes: Notes, kind: type[Exception], said: str
) -> None:
    error = damage_verdict("chr_20.zip", notes, "Bad CRC-32")
    assert type(error) is kind
    assert said in error.message


def test_notes_survive_their_json_and_read_garbage_as_unknown() -> None:
    notes = Notes(attempts=2, segments=(1024, 300), complete=True, size=1324, md5=HEX, damaged=1)
    assert Notes.from_json(notes.to_json()) == notes
    assert Notes.from_json(None) == Notes()
    garbage: dict[str, Any] = {
        "attempts": "two",
        "segments": "x",
        "complete": "yes",
        "size": -1,
        "md5": "nope",
        "damaged": True,
    }
    assert Notes.from_json(garbage) == Notes()
    assert notes.stored == 1324
    assert notes.restarted() == Notes(attempts=2, md5=HEX, damaged=1)


def test_an_md5_next_to_a_file_checks_it_and_is_no_result() -> None:
    response = {
        "outputParams": [
            {
                "download": True,
                "files": [
                    {"name": "chr_1.zip", "hash": "a", "path": "j/output/chr_1.zip", "count": 9},
                    {"name": "chr_1.zip.md5", "hash": "b", "path": "j/output/chr_1.zip.md5"},
                    {"name": "orphan.md5", "hash": "c", "path": "j/output/orphan.md5"},
                    {"name": "chr_2.zip", "hash": "d", "path": "j/output/chr_2.zip", "count": True},
                ],
            }
        ]
    }
    files = output_files(response)
    assert [(f.name, f.count) for f in files][:1] == [("chr_1.zip", 9)]
    assert files[3].count is None  # not a number

    pairs = with_checksums(files)

    assert [(file.name, None if md5 is None else md5.name) for file, md5 in pairs] == [
        ("chr_1.zip", "chr_1.zip.md5"),
        ("orphan.md5", None),  # checks nothing listed: a file like any other
        ("chr_2.zip", None),
    ]


def test_the_share_hash_stays_out_of_a_file_s_repr() -> None:
    assert "secret-hash" not in repr(OutputFile(name="x.zip", hash="secret-hash"))

"""Michigan result downloads as a real Cloudgene 3 server serves them, over real HTTP.

Every GET of /share/results spends one of the file's downloads and ignores Range; a
presigned URL (the server's 301 with an S3 workspace) honours Range for free. What arrived
is kept (here in a MemorySink's memory, in the hub's storage in production), so a retried
fetch resumes or reuses it; the last download is never spent on a retry; a published MD5
and the zips' own CRCs are checked before a result is stored.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imputehub.connectors.base import ResultFile, ServiceInfo
from imputehub.connectors.michigan import MichiganConnector
from imputehub.domain.errors import PermanentServiceError, TransientServiceError
from tests.integration.connectors.test_michigan import (
    TOKEN,
    MemoryKept,
    MemorySink,
    completed,
)
from tests.support.michigan_emulator import (
    DOSE,
    EXCLUDED,
    INFO,
    QC_REPORT,
    MichiganEmulator,
    ResultBlob,
    running_emulator,
)

SEGMENT = 1024  # small segments, so a 7 kB zip is kept in several
connector = MichiganConnector(download_segment_size=SEGMENT)
RESULTS = ["chr20.dose.vcf.gz", "chr20.info.gz", "qc_report.txt", "snps-excluded.txt"]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[MichiganEmulator]:
    with running_emulator(tmp_path / "emulator") as server:
        server.add_token(TOKEN)
        yield server


@pytest.fixture
def service(emulator: MichiganEmulator) -> ServiceInfo:
    return ServiceInfo(id="svc-1", slug="mis", api_type="michigan", base_url=emulator.base_url)


def zip_blob(emulator: MichiganEmulator) -> ResultBlob:
    [blob] = [blob for (_, name), blob in emulator.blobs.items() if name == "chr_20.zip"]
    return blob


def kept_zip(sink: MemorySink) -> MemoryKept:
    [kept] = [kept for source, kept in sink.kept.items() if source.endswith("/chr_20.zip")]
    return kept


def assert_all_results(sink: MemorySink) -> None:
    assert sorted(sink.files) == RESULTS
    assert gzip.decompress(sink.files["chr20.dose.vcf.gz"]) == DOSE
    assert gzip.decompress(sink.files["chr20.info.gz"]) == INFO
    assert sink.files["qc_report.txt"] == QC_REPORT
    assert sink.files["snps-excluded.txt"] == EXCLUDED


def zip_gets(emulator: MichiganEmulator) -> list[dict[str, object]]:
    return [d for d in emulator.downloads if d["name"] == "chr_20.zip"]


async def test_a_drop_on_the_server_s_stream_is_downloaded_whole_on_the_retry(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await completed(service)
    size = zip_blob(emulator).path.stat().st_size
    emulator.drop_after["chr_20.zip"] = 700
    sink = MemorySink()

    with pytest.raises(TransientServiceError, match=r"chr_20\.zip broke off after 700 of"):
        await connector.fetch_results(service, ref, TOKEN, sink)
    await connector.fetch_results(service, ref, TOKEN, sink)

    assert_all_results(sink)
    # The retry asked for the rest; the server ignores Range and sent it all (and spent
    # another download), which replaced what was kept.
    assert zip_gets(emulator) == [
        {"name": "chr_20.zip", "range": None, "sent": 700},
        {"name": "chr_20.zip", "range": "bytes=700-", "sent": size},
    ]
    assert emulator.presigned == []
    assert zip_blob(emulator).count == 8
    # Each file's kept download is gone once its results are stored.
    assert len(sink.kept) == 3
    assert all(k.saved is None and not k.segments for k in sink.kept.values())


async def test_a_drop_on_a_presigned_url_resumes_there_for_free(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.redirect = True
    ref = await completed(service)
    size = zip_blob(emulator).path.stat().st_size
    emulator.drop_after["chr_20.zip"] = 700
    sink = MemorySink()

    await connector.fetch_results(service, ref, TOKEN, sink)

    assert_all_results(sink)
    assert [d["range"] for d in zip_gets(emulator)] == [None]  # one download spent
    assert [(d["range"], d["sent"]) for d in emulator.presigned if d["name"] == "chr_20.zip"] == [
        (None, 700),
        ("bytes=700-", size - 700),
    ]
    assert zip_blob(emulator).count == 9


async def test_a_kept_partial_download_resumes_with_range_at_the_presigned_url(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await completed(service)
    size = zip_blob(emulator).path.stat().st_size
    emulator.drop_after["chr_20.zip"] = 2500  # two whole segments and part of a third
    sink = MemorySink()
    with pytest.raises(TransientServiceError, match="broke off"):
        await connector.fetch_results(service, ref, TOKEN, sink)
    assert [len(s) for s in kept_zip(sink).segments.values()] == [1024, 1024, 452]

    emulator.redirect = True  # the next GET is redirected: the rest comes for the asking
    await connector.fetch_results(service, ref, TOKEN, sink)

    assert_all_results(sink)
    assert [d["range"] for d in zip_gets(emulator)] == [None, "bytes=2500-"]
    assert [(d["range"], d["sent"]) for d in emulator.presigned if d["name"] == "chr_20.zip"] == [
        ("bytes=2500-", size - 2500)
    ]


async def test_the_last_download_is_not_spent_on_a_retry_after_a_drop(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.download_count = 2
    ref = await completed(service)
    emulator.drop_after["chr_20.zip"] = 700
    sink = MemorySink()
    with pytest.raises(TransientServiceError, match="allows 1 more download of it"):
        await connector.fetch_results(service, ref, TOKEN, sink)

    with pytest.raises(PermanentServiceError) as refused:
        await connector.fetch_results(service, ref, TOKEN, sink)

    assert refused.value.message == (
        "chr_20.zip has 1 download left at the service and an earlier download of it broke "
        "off; imputehub keeps it rather than spend it on a retry that could fail the same way"
    )
    assert len(zip_gets(emulator)) == 1
    assert zip_blob(emulator).count == 1
    assert kept_zip(sink).saved is None  # the job ends: nothing kept for it


async def test_a_download_that_arrives_damaged_fails_its_md5_and_is_downloaded_again(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.publish_md5 = True
    ref = await completed(service)
    emulator.corrupt["chr_20.zip"] = 1  # one byte flipped on the way, once
    sink = MemorySink()

    with pytest.raises(TransientServiceError, match=r"chr_20\.zip arrived damaged: its MD5"):
        await connector.fetch_results(service, ref, TOKEN, sink)
    assert not any(name.startswith("chr20") for name in sink.files)  # nothing stored from it
    assert kept_zip(sink).segments == {}
    stored = await connector.fetch_results(service, ref, TOKEN, sink)

    assert_all_results(sink)  # the .md5 is no result: it checks the zip the user never sees
    assert sorted(f.name for f in stored) == RESULTS
    assert len(zip_gets(emulator)) == 2
    assert [d["name"] for d in emulator.downloads].count("chr_20.zip.md5") == 1


async def test_a_zip_damaged_on_the_way_is_downloaded_again_once(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await completed(service)
    emulator.corrupt["chr_20.zip"] = 1
    sink = MemorySink()

    with pytest.raises(TransientServiceError, match=r"chr_20\.zip arrived damaged \("):
        await connector.fetch_results(service, ref, TOKEN, sink)
    await connector.fetch_results(service, ref, TOKEN, sink)

    assert_all_results(sink)
    assert len(zip_gets(emulator)) == 2


async def test_a_zip_damaged_twice_is_damaged_at_the_service(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await completed(service)
    emulator.corrupt["chr_20.zip"] = 2
    sink = MemorySink()

    with pytest.raises(TransientServiceError, match="arrived damaged"):
        await connector.fetch_results(service, ref, TOKEN, sink)
    with pytest.raises(PermanentServiceError, match=r"chr_20\.zip arrived damaged twice"):
        await connector.fetch_results(service, ref, TOKEN, sink)

    assert len(zip_gets(emulator)) == 2


async def test_a_zip_that_passes_its_md5_but_not_its_crcs_is_not_downloaded_again(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.publish_md5 = True
    ref = await completed(service)
    blob = zip_blob(emulator)  # damaged at the service before its MD5 was computed
    content = bytearray(blob.path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    blob.path.write_bytes(bytes(content))
    [md5] = [b for (_, name), b in emulator.blobs.items() if name == "chr_20.zip.md5"]
    md5.path.write_text(f"{hashlib.md5(content, usedforsecurity=False).hexdigest()}  chr_20.zip\n")

    with pytest.raises(PermanentServiceError, match=r"chr_20\.zip is damaged at the service"):
        await connector.fetch_results(service, ref, TOKEN, MemorySink())

    assert len(zip_gets(emulator)) == 1


class FailsOnce(MemorySink):
    """Storing the zip's first member fails once (the storage was briefly unavailable)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile:
        if name.endswith(".gz") and not self.failed:
            self.failed = True
            raise TransientServiceError("storage briefly unavailable")
        return await super().store(name, chunks)


async def test_a_download_kept_complete_is_not_downloaded_again(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await completed(service)
    sink = FailsOnce()

    with pytest.raises(TransientServiceError, match="storage briefly unavailable"):
        await connector.fetch_results(service, ref, TOKEN, sink)
    notes = kept_zip(sink).saved
    assert notes is not None
    assert notes["complete"] is True
    await connector.fetch_results(service, ref, TOKEN, sink)

    assert_all_results(sink)
    assert len(zip_gets(emulator)) == 1
    assert zip_blob(emulator).count == 9


async def test_a_kept_segment_that_went_missing_is_asked_for_again(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    emulator.redirect = True
    ref = await completed(service)
    size = zip_blob(emulator).path.stat().st_size
    sink = FailsOnce()
    with pytest.raises(TransientServiceError):
        await connector.fetch_results(service, ref, TOKEN, sink)
    kept = kept_zip(sink)
    del kept.segments[3]  # lost, with everything after it
    await connector.fetch_results(service, ref, TOKEN, sink)

    assert_all_results(sink)
    assert [d["range"] for d in zip_gets(emulator)] == [None, "bytes=3072-"]
    assert [(d["range"], d["sent"]) for d in emulator.presigned if d["name"] == "chr_20.zip"] == [
        (None, size),
        ("bytes=3072-", size - 3072),
    ]


async def test_a_retired_notice_leaves_the_results_downloadable(
    service: ServiceInfo, emulator: MichiganEmulator
) -> None:
    ref = await completed(service)
    job = emulator.jobs[ref.external_id]
    deletes_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    emulator.retire_notice(job.name, deletes_at)
    sink = MemorySink()

    await connector.fetch_results(service, ref, TOKEN, sink)

    assert_all_results(sink)
    assert job.state == 8
    assert job.deleted_ms == int(deletes_at.timestamp() * 1000)

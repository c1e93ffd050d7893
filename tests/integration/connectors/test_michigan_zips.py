"""Result zips decrypted as Michigan servers make them: ZipCrypto (`zip -P`) and AES-256.

Every member's bytes reach the sink exactly as zipped; a damaged zip (a flipped byte, a
truncated or foreign file) is a DamagedZip, never stored; a wrong password is final.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pyzipper  # type: ignore[import-untyped]

from imputehub.connectors.base import ResultFile
from imputehub.connectors.michigan.results import DamagedZip, store_zip_members
from imputehub.domain.errors import PermanentServiceError

PASSWORD = "Zq3kV9sLw2Xr7TnB5mHc"
# Incompressible, several of libarchive's blocks, and a small second member.
DOSE = os.urandom(3 * 1024 * 1024 + 17)
INFO = b"SNP\tREF\tALT\tRsq\n20:60343\tG\tA\t0.91\n" * 50


class Sink:
    """Keeps what it is given; a member whose stream fails is not kept."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> ResultFile:
        data = bytearray()
        async for chunk in chunks:
            data.extend(chunk)
        self.files[name] = bytes(data)
        return ResultFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def members(folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    (folder / "chr20.dose.vcf.gz").write_bytes(DOSE)
    (folder / "chr20.info.gz").write_bytes(INFO)
    return [folder / "chr20.dose.vcf.gz", folder / "chr20.info.gz"]


def zipcrypto(tmp_path: Path, *, level: str = "-0") -> Path:
    target = tmp_path / "chr_20.zip"
    subprocess.run(
        ["zip", "-q", level, "-j", "-P", PASSWORD, str(target), *map(str, members(tmp_path / "m"))],
        check=True,
    )
    return target


def aes(tmp_path: Path) -> Path:
    target = tmp_path / "chr_20.zip"
    with pyzipper.AESZipFile(
        target, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(PASSWORD.encode())
        for path in members(tmp_path / "m"):
            archive.write(path, path.name)
    return target


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make", [zipcrypto, lambda p: zipcrypto(p, level="-6"), aes])
async def test_members_arrive_exactly_as_zipped(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sink = Sink()

    stored = await store_zip_members(make(tmp_path), "chr_20.zip", PASSWORD, sink)

    assert sink.files == {"chr20.dose.vcf.gz": DOSE, "chr20.info.gz": INFO}
    assert [f.sha256 for f in stored] == [
        hashlib.sha256(DOSE).hexdigest(),
        hashlib.sha256(INFO).hexdigest(),
    ]


@pytest.mark.parametrize("make", [zipcrypto, lambda p: zipcrypto(p, level="-6"), aes])
async def test_a_flipped_byte_is_damage_and_nothing_of_that_member_is_kept(
    make,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    path = make(tmp_path)
    flip(path, len(DOSE) // 2)  # inside the first member's data
    sink = Sink()

    with pytest.raises(DamagedZip):
        await store_zip_members(path, "chr_20.zip", PASSWORD, sink)

    assert "chr20.dose.vcf.gz" not in sink.files


@pytest.mark.parametrize("make", [zipcrypto, aes])
async def test_a_truncated_zip_is_damage(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    path.write_bytes(path.read_bytes()[: len(DOSE) // 3])

    with pytest.raises(DamagedZip):
        await store_zip_members(path, "chr_20.zip", PASSWORD, Sink())


async def test_a_file_that_is_no_zip_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "chr_20.zip"
    path.write_text("<html>Service Unavailable</html>")

    with pytest.raises(DamagedZip):
        await store_zip_members(path, "chr_20.zip", PASSWORD, Sink())


async def test_a_wrong_password_is_final_and_says_so(tmp_path: Path) -> None:
    path = aes(tmp_path)

    with pytest.raises(PermanentServiceError, match="with the job's password") as raised:
        await store_zip_members(path, "chr_20.zip", "not-the-password", Sink())

    assert not isinstance(raised.value, DamagedZip)
    assert PASSWORD not in str(raised.value)

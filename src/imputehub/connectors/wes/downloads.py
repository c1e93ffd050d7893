"""One result download: where to GET it, what it must be, and what its errors mean.

A storage link's refusal says nothing of the WES credential (the link never carried it), so
its 401/403 fail the job without marking the credential unverified. The bytes are checked
as they stream against the size and sha256 a DRS object declares; a mismatch raises inside
the stream, which makes the storage write discard the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from imputehub.connectors.retry_after import retry_after
from imputehub.connectors.wes.answers import message_of
from imputehub.domain.errors import PermanentServiceError, TransientServiceError


@dataclass(frozen=True)
class Download:
    """Where to GET one result file, and what the bytes must be when the source says so."""

    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    size: int | None = None
    sha256: str | None = None
    # The WES credential may go to this URL (it is the WES server's own origin).
    send_credential: bool = False
    name: str | None = None  # the DRS object's own file name, if it has one


def refused(response: httpx.Response, name: str) -> None:
    """A download's error answer (a storage link's 401 says nothing of the WES credential)."""
    status = response.status_code
    if status >= 500 or status in (408, 429):
        raise TransientServiceError(
            f"the download of result {name} answered HTTP {status}",
            retry_after=retry_after(response),
        )
    raise PermanentServiceError(
        f"the download of result {name} was refused (HTTP {status}): {message_of(response)}"
    )


async def checked(
    chunks: AsyncIterator[bytes], name: str, source: Download
) -> AsyncIterator[bytes]:
    """The bytes as they come; at the end, raise if they are not what the source declared.

    Raising inside the stream makes the storage write discard the file, so a wrong file is
    never stored as a result; the worker fetches again.
    """
    digest = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    if source.size is not None and size != source.size:
        raise TransientServiceError(
            f"result {name} arrived with {size} bytes, but its DRS object says "
            f"{source.size}; it will be fetched again"
        )
    if source.sha256 is not None and digest.hexdigest() != source.sha256:
        raise TransientServiceError(
            f"result {name} arrived with a sha256 other than its DRS object's; "
            "it will be fetched again"
        )

"""Sending a file's parts to a hub: several at once, each streamed from disk and checked.

Each part is hashed first (its SHA-256 goes in `X-Part-SHA256`, so damage on the way is
caught by the hub), then streamed from the file in small pieces: memory stays flat however
large the parts. Network failures and 5xx answers are retried with backoff; the hub's
refusals (4xx) end the transfer with the hub's own message.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imputehub import __version__
from imputehub.cli.client import API_PREFIX, HubUnreachable, problem_error, segment

if TYPE_CHECKING:
    import httpx

READ_SIZE = 1024 * 1024
# Smaller pieces when the rate is limited, so the pacing is smooth.
PACED_READ_SIZE = 64 * 1024
HASH_SIZE = 4 * 1024 * 1024
MAX_ATTEMPTS = 6
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

Progress = Callable[[int], None]


@dataclass(frozen=True, kw_only=True)
class PartPlan:
    upload_id: str
    path: Path
    size: int
    part_size: int

    def span(self, index: int) -> tuple[int, int]:
        """(offset, length) of part `index` in the file."""
        offset = index * self.part_size
        return offset, min(self.part_size, self.size - offset)


class RateLimit:
    """At most `rate` bytes per second, shared by all parts in flight."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._start = time.monotonic()
        self._sent = 0

    async def take(self, amount: int) -> None:
        self._sent += amount
        ahead = self._sent / self.rate - (time.monotonic() - self._start)
        if ahead > 0:
            await asyncio.sleep(ahead)


def hash_range(path: Path, offset: int, length: int, on_bytes: Progress | None = None) -> str:
    """SHA-256 of `length` bytes of the file from `offset`, read in bounded pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(HASH_SIZE, remaining))
            if not chunk:
                raise OSError(f"{path} became shorter while it was being read")
            digest.update(chunk)
            remaining -= len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return digest.hexdigest()


async def _file_chunks(
    path: Path, offset: int, length: int, on_bytes: Progress, limit: RateLimit | None
) -> AsyncGenerator[bytes, None]:
    size = PACED_READ_SIZE if limit is not None else READ_SIZE
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining > 0:
            chunk = await asyncio.to_thread(handle.read, min(size, remaining))
            if not chunk:
                raise OSError(f"{path} became shorter while it was being sent")
            remaining -= len(chunk)
            if limit is not None:
                await limit.take(len(chunk))
            on_bytes(len(chunk))
            yield chunk


class PartSender:
    """Sends parts of one upload over one connection pool; use `async with`."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        parallel: int,
        limit: RateLimit | None = None,
        retry_delay: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        import httpx  # here, not at the top: `imputehub --help` need not load it

        headers = {"User-Agent": f"imputehub-cli/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url
        self.parallel = parallel
        self.limit = limit
        self.retry_delay = retry_delay
        self._http = httpx.AsyncClient(
            base_url=url + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(60.0, write=300.0),
            limits=httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel),
            transport=transport,
        )

    async def __aenter__(self) -> PartSender:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def send(self, plan: PartPlan, indexes: Iterable[int], on_bytes: Progress) -> None:
        """Send the parts `indexes`, `parallel` at a time; the first refusal stops them all
        (raised inside an ExceptionGroup, as asyncio.TaskGroup does)."""
        queue = deque(indexes)

        async def lane() -> None:
            while queue:
                await self._send_part(plan, queue.popleft(), on_bytes)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.parallel, len(queue))):
                group.create_task(lane())

    async def _send_part(self, plan: PartPlan, index: int, on_bytes: Progress) -> None:
        import httpx

        offset, length = plan.span(index)
        sha256 = await asyncio.to_thread(hash_range, plan.path, offset, length)
        path = f"/uploads/{segment(plan.upload_id)}/part/{index}"
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
            "X-Part-SHA256": sha256,
        }
        problem: str = "no answer"
        for attempt in range(MAX_ATTEMPTS):
            sent = 0

            def count(amount: int) -> None:
                nonlocal sent
                sent += amount
                on_bytes(amount)

            chunks = _file_chunks(plan.path, offset, length, count, self.limit)
            try:
                response = await self._http.put(path, content=chunks, headers=headers)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = type(exc).__name__
                response = None
            finally:
                await chunks.aclose()
            if response is not None and not response.is_error:
                return
            on_bytes(-sent)  # this attempt's bytes did not count
            if response is not None and response.status_code not in RETRY_STATUSES:
                raise problem_error(response)
            if response is not None:
                problem = f"HTTP {response.status_code}"
            await asyncio.sleep(min(self.retry_delay * 2**attempt, 30.0))
        raise HubUnreachable(
            f"part {index} could not be sent to {self.url} after {MAX_ATTEMPTS} attempts "
            f"({problem}); run the same command again to resume"
        )

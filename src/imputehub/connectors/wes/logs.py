"""Log URLs: when a RunLog gives `stdout`/`stderr` as links (the spec, toil), the hub reads
only their last MAX_LOG_BYTES on each poll (`Range: bytes=-N`, or the stream's tail kept),
sending the credential only to the WES server's own origin. A log that cannot be fetched is
noted in the job's logs and never fails a poll.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urljoin

import httpx

from imputehub.connectors.url_guard import UrlRefused, shown
from imputehub.connectors.wes import states
from imputehub.connectors.wes.outputs import same_origin
from imputehub.domain.errors import TransientServiceError

MAX_LOG_BYTES = 64 * 1024  # the tail of a log URL the hub reads on each poll
LOG_CHUNK_SIZE = 16 * 1024


async def _log_tail(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> str:
    """The last MAX_LOG_BYTES of a log, never more in memory; raise httpx.HTTPError if not."""
    asked = {**headers, "Range": f"bytes=-{MAX_LOG_BYTES}"}
    async with client.stream("GET", url, headers=asked) as response:
        if response.status_code == 416:
            return ""  # an empty log has no last bytes
        response.raise_for_status()
        # 206 from the log's middle, or a server that ignored Range (200) and was cut below.
        cut = response.status_code == 206 and not response.headers.get(
            "Content-Range", ""
        ).startswith("bytes 0-")
        tail = bytearray()
        async for chunk in response.aiter_bytes(LOG_CHUNK_SIZE):
            tail += chunk
            if len(tail) > MAX_LOG_BYTES:
                del tail[: len(tail) - MAX_LOG_BYTES]
                cut = True
    text = tail.decode("utf-8", errors="replace")
    if cut and "\n" in text:
        text = text.split("\n", 1)[1]  # the first line is only the end of one
    return text


async def with_fetched_logs(
    run: dict[str, Any],
    base: str,
    headers: dict[str, str],
    guarded_client: Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The run with log URLs replaced by their tails' text, and notes on those that failed.

    `guarded_client` leases the service's guarded client (`url_guard.py`) that follows
    redirects, taken only when there are links: a log URL is one the service named, so it
    may reach only what a result URL may.
    """
    log = run.get("run_log")
    if not isinstance(log, Mapping):
        return run, ()
    links = {
        key: urljoin(base.rstrip("/") + "/", str(log[key]).strip())
        for key in ("stdout", "stderr")
        if isinstance(log.get(key), str) and states.is_log_url(log[key])
    }
    if not links:
        return run, ()
    texts = dict(log)
    notes: list[str] = []
    async with guarded_client() as client:
        for key, url in links.items():
            sent = headers if same_origin(url, base) else {}
            try:
                texts[key] = await _log_tail(client, url, sent)
            except httpx.HTTPStatusError as exc:
                texts[key] = ""
                notes.append(
                    f"{key}: the log at {shown(url)} could not be fetched "
                    f"(HTTP {exc.response.status_code})"
                )
            except (UrlRefused, TransientServiceError) as exc:
                texts[key] = ""
                notes.append(f"{key}: the log at {shown(url)} was not fetched: {exc.message}")
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                texts[key] = ""
                notes.append(
                    f"{key}: the log at {shown(url)} could not be fetched ({type(exc).__name__})"
                )
    return {**run, "run_log": texts}, tuple(notes)

"""DRS 1.x: where a `drs://host/id` result can be downloaded over http(s).

`drs://host/id` is `{drs_scheme}://host/ga4gh/drs/v1/objects/id` (https unless the service
sets `drs_scheme: http`, for private deployments); the object's `access_url`, or else
`/objects/{id}/access/{access_id}`, gives the URL and the headers to send to it, and the
object its size and sha256, which the download is checked against.

Headers a DRS server names for its access URL are its choice, not the hub's: only those on
ALLOWED_ACCESS_HEADERS are sent, and `Authorization` only to the DRS server's own origin
(hop-by-hop, Host, Cookie and cloud metadata headers such as `Metadata-Flavor` never go).
The DRS object and the access URL are fetched through the URL guard (`url_guard.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from posixpath import basename
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from imputehub.connectors.http import ask
from imputehub.connectors.retry_after import retry_after
from imputehub.connectors.wes.downloads import Download
from imputehub.connectors.wes.outputs import OutputFile, name_from, same_origin
from imputehub.domain.errors import PermanentServiceError, TransientServiceError

DRS_PATH = "/ga4gh/drs/v1/objects/"


def result_name(file: OutputFile, source: Download) -> str:
    """A DRS result's name: its DRS object's `name` where the run named it only by its id."""
    if not source.name or basename(file.name) != name_from(file.url):
        return file.name
    folder = file.name.rpartition("/")[0]
    name = basename(source.name.replace("\\", "/")) or file.name
    if name in ("..", "."):
        return file.name
    return f"{folder}/{name}" if folder else name


def drs_scheme(config: Mapping[str, Any]) -> str:
    """How DRS servers are reached: https, or http for a private deployment (`drs_scheme`)."""
    chosen = config.get("drs_scheme", "https")
    if chosen not in ("http", "https"):
        raise PermanentServiceError(
            f"drs_scheme {chosen!r} in the service settings is neither 'https' nor 'http'"
        )
    return str(chosen)


def drs_object_url(uri: str, scheme: str) -> str:
    """`drs://host/id` -> `{scheme}://host/ga4gh/drs/v1/objects/id`."""
    parts = urlsplit(uri)
    object_id = unquote(parts.path.lstrip("/"))
    if parts.scheme != "drs" or not parts.netloc or not object_id:
        raise PermanentServiceError(f"{uri} is not a DRS URI of the form drs://host/id")
    return f"{scheme}://{parts.netloc}{DRS_PATH}{quote(object_id, safe='')}"


def _header_map(value: Any) -> dict[str, str]:
    """DRS access headers: a list of "Name: value" strings (the spec), or an object."""
    headers: dict[str, str] = {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    for item in value if isinstance(value, list) else []:
        if isinstance(item, str) and ":" in item:
            name, _, text = item.partition(":")
            headers[name.strip()] = text.strip()
    return headers


# Header (lower-case) -> whether it may go to an origin other than the DRS server's own.
ALLOWED_ACCESS_HEADERS = {"authorization": False}


def allowed_headers(headers: Mapping[str, str], url: str, drs_url: str) -> dict[str, str]:
    """The access headers the hub will send to `url` (see the module's doc)."""
    own = same_origin(url, drs_url)
    return {
        name: value
        for name, value in headers.items()
        if name.lower() in ALLOWED_ACCESS_HEADERS and (own or ALLOWED_ACCESS_HEADERS[name.lower()])
    }


def _sha256_of(drs_object: Mapping[str, Any]) -> str | None:
    for entry in drs_object.get("checksums") or []:
        if not isinstance(entry, Mapping):
            continue
        kind = str(entry.get("type") or "").lower().replace("-", "").replace("_", "")
        if kind == "sha256" and entry.get("checksum"):
            return str(entry["checksum"]).lower()
    return None


async def _drs_answer(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], uri: str
) -> dict[str, Any]:
    try:
        response = await ask(
            client, "GET", url, service=f"the DRS server for {uri}", headers=headers
        )
    except httpx.TransportError as exc:
        raise TransientServiceError(
            f"the DRS server for {uri} could not be reached ({type(exc).__name__})"
        ) from exc
    status = response.status_code
    if status == 202 or status >= 500 or status == 429:
        # 202: the DRS server is still preparing the object and says when to ask again.
        raise TransientServiceError(
            f"the DRS server is not ready to give {uri} (HTTP {status})",
            retry_after=retry_after(response),
        )
    if status >= 400:
        # Never CredentialRejected: a foreign DRS server's refusal says nothing of the
        # WES credential, which it never saw.
        raise PermanentServiceError(f"the DRS server refused {uri} (HTTP {status})")
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientServiceError(f"the DRS server sent a malformed answer for {uri}") from exc
    if not isinstance(body, dict):
        raise TransientServiceError(
            f"the DRS server sent an answer of an unexpected shape for {uri}"
        )
    return body


def _http_url(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("url")
    if isinstance(value, str) and urlsplit(value).scheme in ("http", "https"):
        return value
    return None


async def resolve_drs(
    client: httpx.AsyncClient,
    uri: str,
    *,
    scheme: str,
    wes_base: str,
    credential_headers: dict[str, str],
) -> Download:
    """Where a `drs://` result can be downloaded over http(s), asked of its DRS server.

    The WES credential goes to the DRS server only when it is the WES server's own origin;
    the access URL gets the headers the DRS server names for it.
    """
    object_url = drs_object_url(uri, scheme)
    own = same_origin(object_url, wes_base)
    sent = credential_headers if own else {}
    drs_object = await _drs_answer(client, object_url, sent, uri)
    size = drs_object.get("size")
    methods = [m for m in drs_object.get("access_methods") or [] if isinstance(m, Mapping)]
    access: Mapping[str, Any] | None = None
    for method in methods:
        if _http_url(method.get("access_url")):
            access = (
                method["access_url"]
                if isinstance(method["access_url"], Mapping)
                else {"url": method["access_url"]}
            )
            break
    if access is None:
        for method in methods:
            if method.get("access_id"):
                answer = await _drs_answer(
                    client,
                    f"{object_url}/access/{quote(str(method['access_id']), safe='')}",
                    sent,
                    uri,
                )
                if _http_url(answer):
                    access = answer
                    break
    if access is None:
        raise PermanentServiceError(
            f"the DRS object {uri} offers no http(s) access the hub can use"
        )
    url = str(_http_url(access))
    name = drs_object.get("name")
    return Download(
        url=url,
        headers=allowed_headers(_header_map(access.get("headers")), url, object_url),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        sha256=_sha256_of(drs_object),
        send_credential=same_origin(url, wes_base),
        name=str(name) if isinstance(name, str) and name else None,
    )

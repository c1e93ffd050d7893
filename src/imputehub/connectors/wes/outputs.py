"""Where a finished WES run's result files are, whatever shape its `outputs` take.

- an object (the spec; CWL output objects): File objects by `location` (or `path`),
  Directory objects by their `listing`, arrays of either, or plain URL strings
  (a string map, as the GA4GH Starter Kit gives);
- a list of `{file_name, file_url}` (sapporo).
Locations may be http(s) URLs or `drs://host/id` URIs (resolved by `drs.py`). Names keep
sub-folders; when every file sits in one top-level folder (the workflow's single output
directory) that folder is dropped, so results read `chr20.dose.vcf.gz`, not
`results/chr20.dose.vcf.gz`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from posixpath import basename
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from imputehub.domain.errors import PermanentServiceError

DRS_PATH = "/ga4gh/drs/v1/objects/"


@dataclass(frozen=True)
class OutputFile:
    name: str
    url: str


def name_from(url: str) -> str:
    return unquote(basename(urlsplit(url).path)) or "output"


def _walk(value: Any, prefix: str, found: list[tuple[str, str]]) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(item, prefix, found)
        return
    if isinstance(value, str):
        if "://" in value or value.startswith("/"):
            found.append((prefix or name_from(value), value))
        return
    if not isinstance(value, Mapping):
        return
    kind = value.get("class")
    if kind == "File":
        location = str(value.get("location") or value.get("path") or "")
        if location:
            name = str(value.get("basename") or name_from(location))
            found.append((f"{prefix}/{name}" if prefix else name, location))
    elif kind == "Directory":
        name = str(value.get("basename") or name_from(str(value.get("location") or "")))
        _walk(value.get("listing") or [], f"{prefix}/{name}" if prefix else name, found)
    else:
        for key, item in value.items():
            # A string map names each file by its key; nested objects by what they hold.
            _walk(item, str(key) if isinstance(item, str) else prefix, found)


def _strip_common_folder(files: list[tuple[str, str]]) -> list[tuple[str, str]]:
    firsts = {name.split("/", 1)[0] for name, _ in files}
    if len(firsts) == 1 and all("/" in name for name, _ in files):
        return [(name.split("/", 1)[1], url) for name, url in files]
    return files


def output_files(outputs: Any, base_url: str) -> list[OutputFile]:
    """The run's result files, with absolute http(s) URLs; raise if the hub can't fetch one."""
    found: list[tuple[str, str]] = []
    if isinstance(outputs, list) and all(
        isinstance(item, Mapping) and "file_url" in item for item in outputs
    ):
        for item in outputs:
            url = str(item["file_url"])
            found.append((str(item.get("file_name") or name_from(url)), url))
    else:
        _walk(outputs, "", found)
    files: list[OutputFile] = []
    for name, location in _strip_common_folder(found):
        url = (
            urljoin(base_url.rstrip("/") + "/", location) if location.startswith("/") else location
        )
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https", "drs"):
            raise PermanentServiceError(
                f"the service gives result {name} as {url}, which the hub cannot download "
                "(only http, https and drs:// result locations are supported)"
            )
        if ".." in name.split("/") or name.startswith("/"):
            raise PermanentServiceError(f"the service named a result file {name!r}")
        files.append(OutputFile(name=name, url=url))
    return files


def same_origin(url: str, base: str) -> bool:
    left, right = urlsplit(url), urlsplit(base)
    return (left.scheme, left.netloc) == (right.scheme, right.netloc)

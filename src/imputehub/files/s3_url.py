"""Where S3 storage lives: the IMPUTEHUB_STORAGE_URL, parsed.

`s3://[KEY:SECRET@]bucket[/prefix]?endpoint_url=...&region=...`; without KEY:SECRET,
boto3's standard chain (AWS_ACCESS_KEY_ID and friends, ~/.aws) supplies the credentials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

_QUERY_KEYS = {"endpoint_url", "region"}


@dataclass(frozen=True, kw_only=True)
class S3Location:
    """Where and how to reach the bucket, parsed from IMPUTEHUB_STORAGE_URL."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)


def parse_storage_url(url: str) -> S3Location:
    """`s3://[KEY:SECRET@]bucket[/prefix]?endpoint_url=...&region=...`.

    Error messages never repeat the URL: it may hold a secret.
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.hostname:
        raise ValueError("the storage URL must look like s3://bucket?endpoint_url=...")
    query = parse_qs(parts.query, keep_blank_values=False)
    unknown = sorted(set(query) - _QUERY_KEYS)
    if unknown:
        raise ValueError(f"unknown storage URL options: {', '.join(unknown)}")
    prefix = parts.path.strip("/")
    return S3Location(
        bucket=parts.hostname,
        prefix=f"{prefix}/" if prefix else "",
        endpoint_url=query.get("endpoint_url", [None])[-1],
        region=query.get("region", [None])[-1],
        access_key=unquote(parts.username) if parts.username else None,
        secret_key=unquote(parts.password) if parts.password else None,
    )

"""boto3/botocore exceptions translated into ours, at the S3 boundary.

Messages name the S3 error code, never a URL, a key id or a secret.
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from imputehub.domain.errors import ImputehubError, InvalidInput, NotFound, StorageUnavailable

log = logging.getLogger("imputehub.files.s3")

MIN_PART_SIZE = 5 * 1024 * 1024

_UPLOAD_GONE = {"NoSuchUpload"}
_OBJECT_GONE = {"NoSuchKey", "NotFound", "404"}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: BotoCoreError | ClientError) -> ImputehubError:
    """Our error for a boto error; the message names the S3 error code, never a secret."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in _UPLOAD_GONE:
            return NotFound("upload not found (it was completed, aborted or has expired)")
        if code in _OBJECT_GONE:
            return NotFound("the file's content is no longer stored")
        if code == "EntityTooSmall":
            return InvalidInput(
                f"on S3 storage every part but the last must be at least {MIN_PART_SIZE} bytes"
            )
        if code in {"InvalidPart", "InvalidPartOrder"}:
            return InvalidInput("a part is missing or changed while the upload was completed")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        reason = code or str(status)
        log.warning(
            "object storage refused a request",
            extra={"action": "storage_refused", "s3_code": reason},
        )
        return StorageUnavailable(f"object storage refused the request ({reason})")
    log.warning(
        "object storage cannot be reached",
        extra={"action": "storage_unreachable", "error": type(exc).__name__},
    )
    return StorageUnavailable(f"object storage cannot be reached ({type(exc).__name__})")

"""HTTP answers for downloads: 200, 206, 304, 307 (to object storage) or 416."""

from __future__ import annotations

from fastapi import Response, status
from fastapi.responses import RedirectResponse, StreamingResponse

from imputehub.api.problems import problem
from imputehub.files import names, ranges
from imputehub.files.downloads import Download, NotModified, Redirect

# Per-user data behind a token: caches may keep it only for that user, and must check
# back (a cheap If-None-Match) before reusing it.
CACHE_CONTROL = "private, no-cache"


def download_response(download: Download, *, instance: str) -> Response:
    common = {"ETag": download.etag, "Cache-Control": CACHE_CONTROL, "Accept-Ranges": "bytes"}
    answer = download.answer
    if isinstance(answer, NotModified):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=common)
    if isinstance(answer, Redirect):
        # A presigned URL is a short-lived secret of its own: never cache the redirect.
        return RedirectResponse(
            answer.url,
            status_code=status.HTTP_307_TEMPORARY_REDIRECT,
            headers={"Cache-Control": "no-store"},
        )
    if isinstance(answer, ranges.Unsatisfiable):
        return problem(
            status.HTTP_416_RANGE_NOT_SATISFIABLE,
            code="range_not_satisfiable",
            detail=f"the requested range is outside the file's {answer.size} bytes",
            instance=instance,
            headers={**common, "Content-Range": answer.content_range},
        )
    assert download.chunks is not None
    headers = {
        **common,
        "Content-Disposition": names.content_disposition(download.record.filename),
        # User-supplied bytes: never let a browser guess they are a page to render.
        "X-Content-Type-Options": "nosniff",
    }
    if isinstance(answer, ranges.ByteRange):
        headers |= {"Content-Length": str(answer.length), "Content-Range": answer.content_range}
        code = status.HTTP_206_PARTIAL_CONTENT
    else:
        headers["Content-Length"] = str(download.record.size)
        code = status.HTTP_200_OK
    return StreamingResponse(
        download.chunks,
        status_code=code,
        media_type="application/octet-stream",
        headers=headers,
    )

"""Signed links to a job's input files, for services that fetch inputs themselves.

Some services take no uploads with the submission (DNAstack Workbench, the GA4GH Starter
Kit): the workflow is given a URL per input and downloads it. The hub gives each input a
link to its own endpoint, `GET /api/v1/links/{job_id}/{file_id}/{filename}?expires=…&signature=…`:

- the signature is an HMAC-SHA256, under a key derived from the hub's secret key, over the
  job, the file, the name and the expiry, so a link cannot be altered into another file's,
  another job's or a later one;
- it expires (`INPUT_LINK_SECONDS`, default 24 h: remote queues hold jobs for hours before
  their first step fetches the inputs), and it dies earlier when the job ends, whatever the
  expiry says: the endpoint serves only inputs of a job that is still active;
- the filename is the last path component because workflow engines (cwltool among them)
  name a downloaded input after it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

# Separates this key's uses from the secret key's others (tokens, the vault's default key).
_PURPOSE = b"imputehub input links v1"


@dataclass(frozen=True, kw_only=True)
class LinkSigner:
    key: bytes

    @classmethod
    def from_secret_key(cls, secret_key: str) -> LinkSigner:
        return cls(key=hmac.new(secret_key.encode(), _PURPOSE, hashlib.sha256).digest())

    def signature(self, job_id: str, file_id: str, filename: str, expires: int) -> str:
        message = "\n".join((job_id, file_id, filename, str(expires))).encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def url(
        self, public_url: str, job_id: str, file_id: str, filename: str, expires_at: datetime
    ) -> str:
        expires = int(expires_at.timestamp())
        query = urlencode(
            {"expires": expires, "signature": self.signature(job_id, file_id, filename, expires)}
        )
        path = f"/api/v1/links/{quote(job_id)}/{quote(file_id)}/{quote(filename)}"
        return f"{public_url.rstrip('/')}{path}?{query}"

    def valid(
        self,
        job_id: str,
        file_id: str,
        filename: str,
        expires: int,
        signature: str,
        *,
        now: datetime,
    ) -> bool:
        """The signature matches and the link has not expired (compared in constant time)."""
        expected = self.signature(job_id, file_id, filename, expires)
        # As bytes: compare_digest refuses a str with non-ASCII characters (a TypeError, not
        # a mismatch), and anyone may send any signature.
        given = signature.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(expected.encode(), given) and now.timestamp() < expires

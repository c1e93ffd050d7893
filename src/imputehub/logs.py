"""Structured logging: one JSON object per line, with the record's `extra` fields.

Code logs a stable `action` key (`job_submitted`, `login_failed`, ...) plus ids as
`extra`; secrets are never passed to a logger.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


# The request (API) or job (worker) a log line belongs to; set by the request middleware
# and the worker's step runner, copied onto every record by ContextFilter.
request_id_var: ContextVar[str | None] = ContextVar("imputehub_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("imputehub_job_id", default=None)


class ContextFilter(logging.Filter):
    """Adds request_id and job_id from the current context to records that lack them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", request_id_var), ("job_id", job_id_var)):
            value = var.get()
            if value is not None and getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Every log line inside carries `job_id` (the worker wraps each step in this)."""
    token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# Text lines say what happened in the message itself (the access line is
# `GET /api/v1/jobs 200 12.3ms request_id=...`); JSON lines carry the same as fields.
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def log_handler(fmt: str = "json", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to `stream` (stderr): JSON lines for machines, or plain text."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send logs to stderr: JSON lines for machines, or plain text for a terminal."""
    root = logging.getLogger()
    root.handlers[:] = [log_handler(fmt)]
    root.setLevel(level.upper())
    # uvicorn's access log duplicates ours (monitoring/middleware.py, one line per request)
    # and would log query strings, which may hold `access_token=`.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up noise
    # httpx logs every outgoing request's full URL at INFO: a webhook's secret path, a
    # signed link, a service's download URL with its token. Our own lines name what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)

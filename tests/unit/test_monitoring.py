"""Monitoring rules without I/O: rate-limit windows, counter label text, log context."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest

from imputehub.logs import ContextFilter, JsonFormatter, job_context, request_id_var
from imputehub.monitoring import ratelimit
from imputehub.monitoring.counters import label_text


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [
        ("10/minute", 10, 60),
        ("600/minute", 600, 60),
        ("5/second", 5, 1),
        ("100/hours", 100, 3600),
        (" 3 / Minute ", 3, 60),
        ("7", 7, 60),
        ("0", 0, 1),
        ("0/minute", 0, 1),
    ],
)
def test_rate_limits_parse(text: str, count: int, period: int) -> None:
    limit = ratelimit.parse(text)
    assert (limit.count, limit.period) == (count, period)
    assert limit.enabled == (count > 0)


@pytest.mark.parametrize("text", ["ten/minute", "5/fortnight", "-1/minute", ""])
def test_bad_rate_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="a rate limit is"):
        ratelimit.parse(text)


def test_the_limit_resets_with_each_window_and_retry_after_counts_to_its_end() -> None:
    limiter = ratelimit.MemoryLimiter(ratelimit.parse("2/minute"))
    at = datetime(2026, 1, 1, 12, 0, 15, tzinfo=UTC)
    assert limiter.hit("a", at).allowed
    assert limiter.hit("a", at).allowed
    third = limiter.hit("a", at)
    assert not third.allowed
    assert third.retry_after == 45
    assert limiter.hit("b", at).allowed  # another client has its own count
    assert limiter.hit("a", datetime(2026, 1, 1, 12, 1, 0, tzinfo=UTC)).allowed


def test_token_buckets_never_hold_the_token() -> None:
    key = ratelimit.token_key("Bearer ihp_secret_token_value")
    assert "secret" not in key
    assert key.startswith("token:")
    assert key == ratelimit.token_key("Bearer ihp_secret_token_value")


def test_label_text_is_sorted_and_escaped() -> None:
    assert label_text({"step": "poll", "le": "+Inf"}) == 'le="+Inf",step="poll"'
    assert label_text({"name": 'a "b"\\\n'}) == 'name="a \\"b\\"\\\\\\n"'
    assert label_text({}) == ""


def test_log_lines_carry_the_request_and_job_of_their_context() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("imputehub.test_context")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info("outside")
        token = request_id_var.set("req-1")
        with job_context("job-1"):
            logger.info("inside")
            logger.info("explicit", extra={"job_id": "job-2"})
        request_id_var.reset(token)
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(ln.get("request_id"), ln.get("job_id")) for ln in lines] == [
        (None, None),
        ("req-1", "job-1"),
        ("req-1", "job-2"),
        (None, None),
    ]

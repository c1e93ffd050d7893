import json
import logging

import httpx
import pytest

from imputehub.logs import JsonFormatter, configure_logging


def test_log_lines_are_json_with_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "imputehub.worker",
            "levelname": "INFO",
            "msg": "job %s submitted",
            "args": ("j1",),
            "action": "job_submitted",
            "job_id": "j1",
        }
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job j1 submitted"
    assert line["action"] == "job_submitted"
    assert line["job_id"] == "j1"
    assert line["level"] == "info"


def test_outgoing_request_urls_never_reach_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    # httpx logs each request's full URL at INFO; webhook paths and signed links are secrets.
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("httpx").level
    try:
        configure_logging("INFO", "text")
        transport = httpx.MockTransport(lambda request: httpx.Response(204))
        with httpx.Client(transport=transport) as client:
            client.post("https://hooks.example.org/services/T000/B000/s3cr3t-path")
        logging.getLogger("imputehub.test").info("still logging")
    finally:
        root.handlers[:], level, httpx_level = saved
        root.setLevel(level)
        logging.getLogger("httpx").setLevel(httpx_level)
    err = capsys.readouterr().err
    assert "still logging" in err
    assert "s3cr3t-path" not in err

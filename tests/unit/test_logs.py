import json
import logging

from imputehub.logs import JsonFormatter


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

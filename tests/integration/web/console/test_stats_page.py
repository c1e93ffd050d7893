"""The console's stats page: charts drawn on the server with their figures in tables, with
data and without, and the period chosen by ?days=."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx

from imputehub.db.models import ReferencePanel, Service
from imputehub.runtime import Runtime
from tests.support.api import Actor
from tests.support.factories import make_file, make_job, make_panel, make_service

HOUR = timedelta(hours=1)


async def a_job(
    runtime: Runtime, owner: Actor, service: Service, panel: ReferencePanel, **fields: Any
) -> None:
    upload = await make_file(runtime, owner.id)
    await make_job(
        runtime, user_id=owner.id, service=service, panel=panel, files=[upload], **fields
    )


def row_of(page: str, table_id: str, header: str) -> list[str]:
    """The cells of the row whose header cell is `header`, in the table `table_id`."""
    table = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        if cells and cells[0] == header:
            return cells[1:]
    raise AssertionError(f"no row {header!r} in {table_id}")


async def test_the_figures_a_user_would_check(
    client: httpx.AsyncClient, runtime: Runtime, admin_csrf: str, alice: Actor
) -> None:
    now = runtime.clock.now()
    service = await make_service(runtime, name="Michigan <Imputation>", slug="michigan")
    panel = await make_panel(runtime, service)
    for hours in (1, 2, 3):
        await a_job(
            runtime, alice, service, panel, status="completed", next_step=None,
            created_at=now - hours * HOUR, completed_at=now,
        )  # fmt: skip
    await a_job(
        runtime, alice, service, panel, status="failed", next_step=None,
        created_at=now - HOUR, completed_at=now,
    )  # fmt: skip
    await a_job(
        runtime, alice, service, panel, name="stuck <job>", status="queued",
        created_at=now - 3 * HOUR,
    )  # fmt: skip

    page = await client.get("/console/stats")

    assert page.status_code == 200
    text = page.text
    assert row_of(text, "stats-services", "Michigan &lt;Imputation&gt;") == [
        "3", "1", "0", "25 %", "2 h 0 min",
    ]  # fmt: skip
    assert "<Imputation>" not in text
    assert "Last 7 days" in text
    assert 'aria-current="page">Last 7 days' in text
    # The chart of jobs per day: 4 series of 7 points, and the same figures in a table.
    assert text.count('class="point"') == 28
    assert row_of(text, "stats-daily", "In all") == ["5", "3", "1", "0"]
    assert text.count('class="bar"') >= 3
    assert "<figcaption>" in text
    assert "Oldest waiting job:" in text
    assert "stuck &lt;job&gt;" in text
    assert "3 h 0 min" in text
    assert "<script" not in text.split("<main", 1)[1]


async def test_an_empty_hub_gives_charts_that_say_no_data(
    client: httpx.AsyncClient, admin_csrf: str
) -> None:
    page = await client.get("/console/stats", params={"days": "90"})
    assert page.status_code == 200
    assert "No data for this period" in page.text
    assert "No job is waiting." in page.text
    assert "No job ended in this period." in page.text
    assert 'aria-current="page">Last 90 days' in page.text
    assert page.text.count('<tr><th scope="row">20') == 90  # a row per day


async def test_an_unknown_period_shows_a_message_and_the_last_week(
    client: httpx.AsyncClient, admin_csrf: str
) -> None:
    for days in ("8", "<b>", "-7"):
        page = await client.get("/console/stats", params={"days": days})
        assert page.status_code == 422
        assert "Choose a period of 7, 30, 90 days" in page.text
        assert 'aria-current="page">Last 7 days' in page.text
        assert "<b>" not in page.text.split("<main", 1)[1]

"""Stats: jobs over time, per-service throughput, failure rate, time to results, queue depth;
charts drawn here (SVG), no outside host.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from imputehub.api.deps import Now, SessionDep
from imputehub.monitoring import console_stats
from imputehub.monitoring.console_stats import ConsoleStats
from imputehub.web.console import charts
from imputehub.web.console.layout import render_console
from imputehub.web.session_auth import AdminSignedIn
from imputehub.web.templating import duration

router = APIRouter(include_in_schema=False)

DEFAULT_DAYS = 7


def percent(rate: float | None) -> str:
    """0.25 -> '25 %'; a dash while nothing finished."""
    if rate is None:
        return "\u2013"
    value = rate * 100
    return f"{value:.0f} %" if value.is_integer() else f"{value:.1f} %"


def build_charts(figures: ConsoleStats) -> dict[str, Markup]:
    """The page's charts; the template writes the same figures out as tables."""
    days = [day.day.isoformat() for day in figures.daily]
    anything = any(
        day.submitted or day.completed or day.failed or day.cancelled for day in figures.daily
    )
    over_time = (
        charts.line_chart(
            days,
            [
                ("submitted", [day.submitted for day in figures.daily]),
                ("completed", [day.completed for day in figures.daily]),
                ("failed", [day.failed for day in figures.daily]),
                ("cancelled", [day.cancelled for day in figures.daily]),
            ],
            title=f"Jobs per day over the last {figures.days} days",
        )
        if anything
        else charts.no_data(f"Jobs per day over the last {figures.days} days")
    )
    rated = [s for s in figures.services if s.failure_rate is not None]
    timed = [s for s in figures.services if s.median_seconds is not None]
    return {
        "over_time": over_time,
        "throughput": charts.bar_chart(
            [(s.name, float(s.completed)) for s in figures.services],
            title="Completed jobs per service",
        ),
        "failure_rate": charts.bar_chart(
            [(s.name, (s.failure_rate or 0.0) * 100) for s in rated],
            title="Failure rate per service",
            max_value=100.0,
            value_labels=[percent(s.failure_rate) for s in rated],
        )
        if any(s.failure_rate for s in rated)
        else charts.no_data(
            "Failure rate per service",
            "No failures in this period" if rated else "No data for this period",
        ),
        "median": charts.bar_chart(
            [(s.name, float(s.median_seconds or 0.0)) for s in timed],
            title="Median time to results per service",
            value_labels=[duration(s.median_seconds) for s in timed],
        ),
        "depth": charts.bar_chart(
            [(status, float(n)) for status, n in figures.active_by_status.items()],
            title="Active jobs by status now",
        ),
    }


@router.get("/console/stats")
async def stats_page(
    request: Request, session: SessionDep, opened: AdminSignedIn, now: Now
) -> Response:
    raw = request.query_params.get("days", "").strip()
    error = ""
    days = DEFAULT_DAYS
    if raw:
        if raw.isdigit() and int(raw) in console_stats.PERIODS:
            days = int(raw)
        else:
            choices = ", ".join(str(p) for p in console_stats.PERIODS)
            error = f"Choose a period of {choices} days; showing the last {DEFAULT_DAYS} days."
    figures = await console_stats.console_stats(session, opened.user, now=now, days=days)
    return render_console(
        request,
        "console/stats.html",
        {
            "figures": figures,
            "stats_charts": build_charts(figures),
            "percent": percent,
            "periods": console_stats.PERIODS,
            "error": error,
        },
        opened=opened,
        status_code=422 if error else 200,
    )

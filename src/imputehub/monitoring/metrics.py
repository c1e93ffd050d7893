"""GET /metrics: the Prometheus text format, read from the database at scrape time.

Everything comes from the shared database, so every API process answers the same totals:
job counts by state and service, queue depth and the oldest queued job's age, deliveries
by channel and status, service health and response times (derived from their tables), and
the MetricCounter rows workers and uploads bump (claims, retries, failures, step durations,
upload bytes).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Delivery, Job, MetricCounter, Service
from imputehub.domain.jobs import JobStatus
from imputehub.monitoring.counters import label_text
from imputehub.monitoring.ratelimit import LOGIN_PREFIX

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Counter families written by counters.increment/observe: name -> (type, help).
COUNTED: dict[str, tuple[str, str]] = {
    "imputehub_job_claims_total": ("counter", "Job steps claimed by workers."),
    "imputehub_job_retries_total": ("counter", "Job steps that failed transiently, by step."),
    "imputehub_job_failures_total": (
        "counter",
        "Jobs failed by a worker step (permanent errors, retries given up), by step.",
    ),
    "imputehub_step_duration_seconds": ("histogram", "Worker step durations, by step."),
    "imputehub_upload_bytes_total": ("counter", "Bytes received in uploads."),
}
_QUEUED = (JobStatus.PENDING.value, JobStatus.QUEUED.value)


def _sample(name: str, labels: str, value: float) -> str:
    text = "NaN" if math.isnan(value) else repr(float(value))
    return f"{name}{{{labels}}} {text}" if labels else f"{name} {text}"


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


async def render(session: AsyncSession, now: datetime) -> str:
    """The whole exposition, one consistent read."""
    lines: list[str] = []
    services = {s.id: s for s in await session.scalars(select(Service).order_by(Service.slug))}

    def service_of(service_id: str | None) -> str:
        found = services.get(service_id or "")
        return found.slug if found else "unknown"

    # Jobs at services: a federated job's parent runs nowhere (its children are counted).
    at_service = Job.service_id.is_not(None)
    jobs = await session.execute(
        select(Job.status, Job.service_id, func.count())
        .where(at_service)
        .group_by(Job.status, Job.service_id)
    )
    lines += _family(
        "imputehub_jobs",
        "gauge",
        "Jobs by state and service.",
        sorted(
            _sample("imputehub_jobs", label_text({"service": service_of(sid), "status": st}), n)
            for st, sid, n in jobs
        ),
    )

    due = await session.execute(
        select(Job.service_id, func.count())
        .where(
            at_service,
            Job.status.in_(_QUEUED),
            Job.next_step.is_not(None),
            Job.next_run_at <= now,
        )
        .group_by(Job.service_id)
    )
    lines += _family(
        "imputehub_queue_depth",
        "gauge",
        "Pending or queued jobs due for a worker now, by service.",
        sorted(
            _sample("imputehub_queue_depth", label_text({"service": service_of(sid)}), n)
            for sid, n in due
        ),
    )
    oldest = await session.scalar(
        select(func.min(Job.created_at)).where(at_service, Job.status.in_(_QUEUED))
    )
    age = 0.0 if oldest is None else max(0.0, (now - _aware(oldest, now)).total_seconds())
    lines += _family(
        "imputehub_oldest_queued_age_seconds",
        "gauge",
        "Age of the oldest pending or queued job (0 when none).",
        [_sample("imputehub_oldest_queued_age_seconds", "", age)],
    )

    deliveries = await session.execute(
        select(
            Delivery.channel, Delivery.status, func.count(), func.sum(Delivery.attempts)
        ).group_by(Delivery.channel, Delivery.status)
    )
    counts: list[str] = []
    attempts: list[str] = []
    for channel, status, n, tries in deliveries:
        labels = label_text({"channel": channel, "status": status})
        counts.append(_sample("imputehub_notification_deliveries", labels, n))
        attempts.append(_sample("imputehub_notification_delivery_attempts", labels, tries or 0))
    lines += _family(
        "imputehub_notification_deliveries",
        "gauge",
        "Notification deliveries (e-mail, webhook) by channel and status (failed: gave up).",
        sorted(counts),
    )
    lines += _family(
        "imputehub_notification_delivery_attempts",
        "gauge",
        "Delivery attempts made so far, by channel and status.",
        sorted(attempts),
    )

    up: list[str] = []
    response: list[str] = []
    for service in services.values():
        labels = label_text({"service": service.slug, "status": service.health_status})
        up.append(_sample("imputehub_service_up", labels, _health_value(service.health_status)))
        if service.response_time_ms is not None:
            response.append(
                _sample(
                    "imputehub_service_response_seconds",
                    label_text({"service": service.slug}),
                    service.response_time_ms / 1000.0,
                )
            )
    lines += _family(
        "imputehub_service_up",
        "gauge",
        "1 when the service's last health check passed, 0 when not, NaN before any check.",
        up,
    )
    lines += _family(
        "imputehub_service_response_seconds",
        "gauge",
        "The service's response time at its last health check.",
        response,
    )

    lines += await _counted(session)
    return "\n".join(lines) + "\n"


async def _counted(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(MetricCounter.name, MetricCounter.labels, MetricCounter.value)
        .where(MetricCounter.name.not_like(f"{LOGIN_PREFIX}%"))
        .order_by(MetricCounter.name, MetricCounter.labels)
    )
    by_family: dict[str, list[str]] = defaultdict(list)
    for name, labels, value in rows:
        family = _family_of(name)
        by_family[family].append(_sample(name, labels, value))
    lines: list[str] = []
    for family in sorted(set(by_family) | set(COUNTED)):
        kind, help_text = COUNTED.get(family, ("untyped", f"{family}."))
        lines += _family(family, kind, help_text, by_family.get(family, []))
    return lines


def _family_of(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and COUNTED.get(base, ("",))[0] == "histogram":
            return base
    return name


def _health_value(status: str) -> float:
    if status == "healthy":
        return 1.0
    if status == "unknown":
        return math.nan
    return 0.0


def _aware(moment: datetime, now: datetime) -> datetime:
    # SQLite hands back naive datetimes; they are UTC like everything we store.
    return moment.replace(tzinfo=now.tzinfo) if moment.tzinfo is None else moment

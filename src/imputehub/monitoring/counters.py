"""Counters shared by every process: MetricCounter rows, bumped in the caller's transaction.

What the database already knows (jobs by state, deliveries, service health) is derived at
scrape time instead; these rows hold only what would otherwise be lost (claims, retries,
failures, step durations, upload bytes). Each row is one series: a name and its sorted label text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import MetricCounter
from imputehub.db.session import Database

logger = logging.getLogger("imputehub.monitoring")

# Step durations in seconds: from a quick poll to a long download.
DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_text(labels: Mapping[str, str]) -> str:
    """`k="v",…` sorted by key, escaped as the Prometheus text format wants."""
    return ",".join(f'{key}="{_escape(str(labels[key]))}"' for key in sorted(labels))


async def increment(
    session: AsyncSession, name: str, labels: Mapping[str, str] | None = None, by: float = 1.0
) -> float:
    """Add `by` to the series (created at `by`); its new value. Commits with the caller."""
    return (await _add(session, [(name, label_text(labels or {}), by)]))[0]


async def observe(
    session: AsyncSession,
    name: str,
    value: float,
    labels: Mapping[str, str] | None = None,
    buckets: Sequence[float] = DURATION_BUCKETS,
) -> None:
    """One observation of a histogram: `name_bucket{le=…}` (cumulative), `_sum`, `_count`.

    Every bucket is written (adding 0 where the value is above it) so each series exists
    from the first observation, as Prometheus expects of a histogram.
    """
    base = dict(labels or {})
    rows = [
        (f"{name}_bucket", label_text({**base, "le": _bound(b)}), 1.0 if value <= b else 0.0)
        for b in buckets
    ]
    rows.append((f"{name}_bucket", label_text({**base, "le": "+Inf"}), 1.0))
    rows.append((f"{name}_sum", label_text(base), float(value)))
    rows.append((f"{name}_count", label_text(base), 1.0))
    await _add(session, rows)


async def observe_many(
    session: AsyncSession,
    name: str,
    values: Sequence[float],
    labels: Mapping[str, str] | None = None,
    buckets: Sequence[float] = DURATION_BUCKETS,
) -> None:
    """`observe` for several observations of one series at once, in one upsert."""
    if not values:
        return
    base = dict(labels or {})
    rows = [
        (
            f"{name}_bucket",
            label_text({**base, "le": _bound(b)}),
            float(sum(v <= b for v in values)),
        )
        for b in buckets
    ]
    rows.append((f"{name}_bucket", label_text({**base, "le": "+Inf"}), float(len(values))))
    rows.append((f"{name}_sum", label_text(base), float(sum(values))))
    rows.append((f"{name}_count", label_text(base), float(len(values))))
    await _add(session, rows)


async def _add(session: AsyncSession, rows: list[tuple[str, str, float]]) -> list[float]:
    # One upsert statement; rows in key order so concurrent writers lock in the same order.
    rows = sorted(rows)
    insert: Any = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    statement = insert(MetricCounter).values(
        [{"name": name, "labels": labels, "value": by} for name, labels, by in rows]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[MetricCounter.name, MetricCounter.labels],
        set_={"value": MetricCounter.value + statement.excluded.value},
    ).returning(MetricCounter.value)
    return [float(v) for v in (await session.execute(statement)).scalars()]


def _bound(bound: float) -> str:
    return repr(float(bound))


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def increment_alone(
    db: Database, name: str, labels: Mapping[str, str] | None = None, by: float = 1.0
) -> None:
    """`increment` in a transaction of its own, for work already committed elsewhere (an
    upload). A failure is logged, not raised: the work it counts has succeeded."""
    try:
        async with db.session() as session:
            await increment(session, name, labels, by)
    except Exception:
        logger.warning(
            "could not update a metric", extra={"action": "metric_write_failed", "metric": name}
        )

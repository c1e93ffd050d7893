"""Stats: jobs over time, per-service throughput, failure rate, time to results, queue depth;
charts drawn here (SVG), no outside host.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

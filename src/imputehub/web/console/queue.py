"""The queue: every active job with filters, cancel or retry any, per-service pause."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

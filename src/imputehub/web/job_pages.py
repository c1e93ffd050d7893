"""Jobs: the list, one job's page and what can be done to it (cancel, retry, delete, run again)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

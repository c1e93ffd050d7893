"""New job: files (resumable uploads), their pre-flight reports, service, panel, submit."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

"""The end-to-end self-test of a service, started and followed from the console."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

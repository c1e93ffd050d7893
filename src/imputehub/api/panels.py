"""Panels routes (filled in by the panels work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["panels"])

"""The hub settings kept in the database: sign-up mode and domains, maintenance mode."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

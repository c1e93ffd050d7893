"""Settings: profile and password, API tokens, service credentials, notifications, webhooks."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

"""Jinja2 templates for the pages, with the filters they share and one `render`.

Autoescaping is on for every template: values from users and services (job names, service
messages, file names) are text, never markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from imputehub import __version__
from imputehub.accounts.browser_sessions import OpenSession
from imputehub.web.session_auth import CSRF_FIELD

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

NONE = "\u2013"  # an en dash where there is no value
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def filesize(size: int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if size is None:
        return NONE
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(moment: datetime | None) -> str:
    """A time as UTC text, to the minute ('2026-12-03 14:05 UTC')."""
    if moment is None:
        return NONE
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def duration(seconds: float | None) -> str:
    """3725 -> '1 h 2 min'."""
    if seconds is None:
        return NONE
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days {hours % 24} h"


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters.update(filesize=filesize, when=when, iso=iso, duration=duration)
templates.env.globals.update(version=__version__, csrf_field=CSRF_FIELD)


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    opened: OpenSession | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page: `name` rendered with `context`, the signed-in user and their CSRF token."""
    full: dict[str, Any] = {
        "user": opened.user if opened else None,
        "csrf_token": opened.csrf_token if opened else "",
        "path": request.url.path,
        "unread_count": getattr(request.state, "unread_count", 0),
        "maintenance": getattr(request.state, "maintenance", None),
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    # Pages show private data: never from a shared cache, and not from the back button
    # after signing out.
    response.headers["Cache-Control"] = "no-store"
    return response

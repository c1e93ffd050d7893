"""What every console page shares: its section list (the console's own navigation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from imputehub.accounts.browser_sessions import OpenSession
from imputehub.web.templating import render

SECTIONS = (
    ("/console", "Overview"),
    ("/console/services", "Services"),
    ("/console/panels", "Panels"),
    ("/console/users", "Users"),
    ("/console/queue", "Queue"),
    ("/console/stats", "Stats"),
    ("/console/audit", "Audit log"),
    ("/console/settings", "Hub settings"),
)


def section_of(path: str) -> str:
    """The section a console path is in: the longest entry it starts with."""
    best = "/console"
    for href, _ in SECTIONS:
        if (path == href or path.startswith(href + "/")) and len(href) > len(best):
            best = href
    return best


def render_console(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    opened: OpenSession,
    status_code: int = 200,
) -> Response:
    """A console page: `name` (extending console/_layout.html) with the console's nav."""
    path = request.url.path
    return render(
        request,
        name,
        {"console_sections": SECTIONS, "console_here": section_of(path), **(context or {})},
        opened=opened,
        status_code=status_code,
    )

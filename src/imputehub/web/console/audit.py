"""The audit log, with filters and paging."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from imputehub.api.deps import SessionDep
from imputehub.domain.errors import InvalidInput
from imputehub.monitoring import audit
from imputehub.web.console.layout import render_console
from imputehub.web.session_auth import AdminSignedIn
from imputehub.web.settings_common import sentence

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
MAX_PAGE = 100_000
MAX_TEXT = 100
OUTCOMES = ("success", "failure", "denied")
FIELDS = ("action", "actor", "target", "outcome", "since", "until")


def parse_moment(text: str, field: str, *, end: bool = False) -> datetime:
    """A date (YYYY-MM-DD, UTC; as an end, the whole day is included) or an ISO date and
    time (UTC unless it says otherwise)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{field} must be a date such as 2026-12-03 (or a date and time such as "
            "2026-12-03T14:00)",
            field=field,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def query_of(raw: Mapping[str, str], page: int) -> audit.AuditQuery:
    for name in ("action", "actor", "target"):
        if len(raw[name]) > MAX_TEXT:
            raise InvalidInput(f"{name} must be at most {MAX_TEXT} characters", field=name)
    if raw["outcome"] and raw["outcome"] not in OUTCOMES:
        raise InvalidInput("outcome must be one of: " + ", ".join(OUTCOMES), field="outcome")
    since = parse_moment(raw["since"], "since") if raw["since"] else None
    until = parse_moment(raw["until"], "until", end=True) if raw["until"] else None
    if since is not None and until is not None and until <= since:
        raise InvalidInput("until must be after since", field="until")
    return audit.AuditQuery(
        action=raw["action"] or None,
        actor=raw["actor"] or None,
        target=raw["target"] or None,
        outcome=raw["outcome"] or None,
        since=since,
        until=until,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )


def readable(details: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """An entry's details as (key, value) lines; nested keys joined with dots, a change
    written as 'from → to'."""
    lines: list[tuple[str, str]] = []
    for key, value in details.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and set(value) == {"from", "to"}:
            lines.append((name, f"{_text(value['from'])} \u2192 {_text(value['to'])}"))
        elif isinstance(value, Mapping) and value:
            lines += readable(value, name + ".")
        else:
            lines.append((name, _text(value)))
    return lines


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value) or "(none)"
    if value is None or value == "" or value == {}:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@router.get("/console/audit")
async def audit_page(request: Request, session: SessionDep, opened: AdminSignedIn) -> Response:
    raw = {name: request.query_params.get(name, "").strip()[:200] for name in FIELDS}
    page_text = request.query_params.get("page", "1").strip() or "1"
    context: dict[str, Any] = {
        "filters": raw,
        "filtered": any(raw.values()),
        "outcomes": OUTCOMES,
        "entries": [],
        "total": 0,
    }
    try:
        if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
            raise InvalidInput("page must be a whole number from 1", field="page")
        page = int(page_text)
        entries, total = await audit.search(session, query_of(raw, page))
    except InvalidInput as exc:
        return render_console(
            request,
            "console/audit.html",
            {**context, "error": sentence(exc.message)},
            opened=opened,
            status_code=422,
        )
    pages = max(1, -(-total // PAGE_SIZE))

    def page_link(number: int) -> str:
        kept = {k: v for k, v in raw.items() if v}
        return "/console/audit?" + urlencode({**kept, "page": number})

    return render_console(
        request,
        "console/audit.html",
        {
            **context,
            "entries": [(entry, readable(entry.details or {})) for entry in entries],
            "total": total,
            "page": page,
            "pages": pages,
            "previous_link": page_link(page - 1) if page > 1 else None,
            "next_link": page_link(page + 1) if page < pages else None,
        },
        opened=opened,
    )

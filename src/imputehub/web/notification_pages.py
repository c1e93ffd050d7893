"""In-app notifications: unread first, newest first, a page at a time; mark read.

The header's unread badge on every page is kept live by static/js/notifications.js (the
user's event stream, then the unread count from the pages' JSON door).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from imputehub.api.deps import Now, RuntimeDep, SessionDep
from imputehub.notify import inbox
from imputehub.web import session_auth
from imputehub.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 20
# Far enough for anyone's inbox, small enough that the offset stays a sane number.
MAX_PAGE = 100_000

PageQuery = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def back_to(page: str) -> str:
    """The list page a form came from (its `page` field, checked), else the first."""
    number = int(page) if page.isdigit() and 1 <= int(page) <= MAX_PAGE else 1
    return "/notifications" if number == 1 else f"/notifications?page={number}"


@router.get("/notifications")
async def notifications(
    request: Request,
    session: SessionDep,
    opened: session_auth.SignedIn,
    page: PageQuery = 1,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    found = await inbox.list_notifications(
        session, opened.user, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    pages = max(1, -(-found.total // PER_PAGE))
    # The badge counts what is unread now (a mark-read just happened in this request's
    # transaction or an earlier one).
    request.state.unread_count = found.unread
    return render(
        request,
        "notifications.html",
        {
            "items": found.items,
            "total": found.total,
            "unread": found.unread,
            "page": page,
            "pages": pages,
            "notice": {
                "read": "Marked as read.",
                "all_read": "All notifications marked as read.",
            }.get(done or "", ""),
        },
        opened=opened,
    )


@router.post("/notifications/{notification_id}/read")
async def mark_read(
    notification_id: str,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    form = await session_auth.read_form(request, runtime, opened)
    # Another user's notification is "not found" (an HTML 404), as in the API.
    await inbox.set_read(session, opened.user, notification_id[:100], read=True, now=now)
    target = back_to(str(form.get("page") or ""))
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}done=read", status_code=303)


@router.post("/notifications/read-all")
async def mark_all_read(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    opened: session_auth.SignedIn,
    now: Now,
) -> Response:
    await session_auth.read_form(request, runtime, opened)
    await inbox.mark_all_read(session, opened.user, now=now)
    return RedirectResponse("/notifications?done=all_read", status_code=303)

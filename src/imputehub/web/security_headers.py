"""Headers every response gets, and the pages' strict Content-Security-Policy.

The pages run only the hub's own scripts and styles (web/static, no inline script or style,
no other host): an injected `<script>` in a job name or a service message would not run
even if escaping failed. /docs (Swagger UI) needs inline script and keeps its own rules.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
# Paths whose answers are not the pages': the APIs, /docs with its inline Swagger set-up.
_NOT_PAGES = ("/api/", "/app/api/", "/docs", "/openapi.json", "/metrics")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = not str(scope.get("path", "")).startswith(_NOT_PAGES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                headers += [(k, v) for k, v in _ALWAYS if k not in present]
                # A page route that sets a policy of its own keeps it (a federated job's
                # comparison report: sandboxed, no script, its own inline style).
                if page and b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_page_path(path: str) -> bool:
    return not path.startswith(_NOT_PAGES)

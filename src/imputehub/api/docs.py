"""The API documentation page, /docs (Swagger UI), served without internet access.

FastAPI's own page loads its JavaScript, CSS and favicon from a public CDN, so on a hub
without internet access (a common place for genotype data) it stays blank. The same assets
ship, pinned, in the `fastapi-offline` package; the hub serves them itself from
/docs/assets/, and the page asks no other host for anything (no CDN, no validator badge).

There is no /redoc: ReDoc's bundle always loads its logo from the Redocly CDN, and /docs
already shows the whole API.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
# The package's static folder: swagger-ui-bundle.js, swagger-ui.css and favicon.png (and
# redoc.standalone.js, unused).
ASSETS_PACKAGE = ("fastapi_offline", "static")


def install(app: FastAPI) -> None:
    """Serve /docs and its assets (the app is made with docs_url=None, redoc_url=None)."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        assets = _root(request) + ASSETS_URL
        return get_swagger_ui_html(
            openapi_url=_root(request) + openapi_url,
            title=f"{app.title} - API documentation",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            # Bearer tokens only, no OAuth2 flow: no redirect page.
            oauth2_redirect_url=None,
            # The validator would send the schema's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )


def _root(request: Request) -> str:
    """The prefix a reverse proxy mounts the hub under (uvicorn --root-path), if any."""
    return str(request.scope.get("root_path", "")).rstrip("/")

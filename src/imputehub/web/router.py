"""The web pages: their routes, static assets and the pages' JSON door, wired into the app."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from imputehub.runtime import Runtime
from imputehub.web import (
    account_pages,
    browser_api,
    dashboard,
    file_pages,
    job_pages,
    new_job,
    settings_pages,
    signin,
)
from imputehub.web.console import pages as console_pages
from imputehub.web.templating import STATIC_DIR

pages = APIRouter(include_in_schema=False)
for module in (signin, account_pages, dashboard, new_job, job_pages, file_pages, settings_pages):
    pages.include_router(module.router)
pages.include_router(console_pages.router)


def install(app: FastAPI, runtime: Runtime) -> None:
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount(browser_api.PREFIX, browser_api.browser_api(runtime))

"""create_app: wire the runtime into a FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from imputehub import __version__
from imputehub.api import docs, problems
from imputehub.api.admin import metrics_router
from imputehub.api.body_limit import BodyLimit
from imputehub.api.router import api_router
from imputehub.monitoring.middleware import RateLimit, RequestContext
from imputehub.runtime import Runtime
from imputehub.web import errors as web_errors
from imputehub.web import router as web_router
from imputehub.web.security_headers import SecurityHeaders


def create_app(runtime: Runtime, *, run_worker: bool = False) -> FastAPI:
    """The HTTP app. With `run_worker` the worker loop runs in the same process (`serve`)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        if run_worker:
            from imputehub.worker.loop import Worker

            task = asyncio.create_task(Worker(runtime).run(stop), name="imputehub-worker")
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            await runtime.close()

    app = FastAPI(
        title="imputehub",
        version=__version__,
        description="One hub in front of many genotype imputation services.",
        lifespan=lifespan,
        # FastAPI's own /docs and /redoc load their assets from CDNs: api/docs.py serves
        # /docs from the hub itself (and no /redoc).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.runtime = runtime
    problems.install(app, pages=web_errors.page_answer)
    app.include_router(api_router)
    app.include_router(metrics_router)  # /metrics at the root, where Prometheus looks
    docs.install(app)  # /docs, working without internet access
    web_router.install(app, runtime)  # the pages, /static and the pages' JSON door
    # Added last = outermost: the request id exists before the rate limit may answer 429,
    # and a body is refused for its size only after the rate limit has had its say.
    app.add_middleware(BodyLimit, max_bytes=runtime.settings.max_request_body_bytes)
    app.add_middleware(RateLimit, runtime=runtime)
    app.add_middleware(RequestContext)
    app.add_middleware(SecurityHeaders)
    return app

"""Run one real worker process against the fake connector, until SIGTERM or SIGINT.

    FAKE_CONNECTOR_STATE=/tmp/fake.json IMPUTEHUB_DATABASE_URL=... \
        python -m tests.support.run_worker

Settings come from the IMPUTEHUB_* environment like any worker's; the fake connector's
shared state file from FAKE_CONNECTOR_STATE, and the label its calls are recorded under
from FAKE_CONNECTOR_LABEL (default: the process id). Registered for api_type "michigan";
the other types get the real connectors.

Switches for crash tests of the real Michigan connector:
- RUN_WORKER_REAL_MICHIGAN=1: the real Michigan connector instead of the fake;
- RUN_WORKER_KILL_AFTER_SUBMIT=1: the process SIGKILLs itself the moment a Michigan submit
  returns, before the worker can record the service's job id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from imputehub.config import Settings
from imputehub.connectors.base import Connector, ExternalRef, JobSpec, ServiceInfo
from imputehub.connectors.michigan import MichiganConnector
from imputehub.runtime import build_runtime, default_connectors
from imputehub.worker.loop import Worker
from tests.support.fake_connector import FakeConnector

STATE_ENV = "FAKE_CONNECTOR_STATE"
LABEL_ENV = "FAKE_CONNECTOR_LABEL"
REAL_MICHIGAN_ENV = "RUN_WORKER_REAL_MICHIGAN"
KILL_AFTER_SUBMIT_ENV = "RUN_WORKER_KILL_AFTER_SUBMIT"


class DiesAfterSubmit(MichiganConnector):
    """The real connector, in a process that dies right after the service took the job."""

    async def submit(
        self,
        service: ServiceInfo,
        job: JobSpec,
        credential: str | None,
        idempotency_key: str,
    ) -> ExternalRef:
        ref = await super().submit(service, job, credential, idempotency_key)
        os.kill(os.getpid(), signal.SIGKILL)
        return ref  # never reached


def michigan_connector() -> Connector:
    if os.environ.get(KILL_AFTER_SUBMIT_ENV) == "1":
        return DiesAfterSubmit()
    if os.environ.get(REAL_MICHIGAN_ENV) == "1":
        return MichiganConnector()
    return FakeConnector(
        Path(os.environ[STATE_ENV]), label=os.environ.get(LABEL_ENV, f"pid-{os.getpid()}")
    )


async def main() -> None:
    settings = Settings.from_environ()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(process)d %(name)s %(message)s"
    )
    # The real connectors (the local engine among them) plus, unless switched, the fake
    # for "michigan".
    connectors = {**default_connectors(settings), "michigan": michigan_connector()}
    runtime = build_runtime(settings, connectors=connectors)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Worker(runtime, worker_id=os.environ.get(LABEL_ENV)).run(stop)
    finally:
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())

"""A fake imputation service behind our Connector Protocol, for worker tests.

Its state (submitted jobs, submissions per idempotency key, cancels, every call) lives in a
JSON file guarded by `fcntl.flock`, so a test and worker SUBPROCESSES share one "service":
a test can assert a job was submitted exactly once even after a worker was SIGKILLed.

Behaviour is configured globally or per job (the idempotency key, i.e. the hub's job id)
and stored in the same file, so it reaches workers in other processes too:

    fake.configure(delay={"submit": 30})           # every job: submit answers slowly
    fake.configure(job.id, transient={"poll": 2})  # this job: two polls fail transiently
    fake.configure(job.id, permanent={"submit": "panel not found"})
    fake.configure(job.id, lose=True)              # polls raise JobLost
    fake.configure(polls_to_finish=4, results={"a.txt": b"..."})

A submit is recorded before its delay: a worker killed during the delay has reached the
service, but never learnt the external id - the crash the worker must survive.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from imputehub.connectors.base import (
    ExternalRef,
    ExternalState,
    ExternalStatus,
    Health,
    HealthStatus,
    InputFile,
    JobSpec,
    PanelInfo,
    ResultFile,
    ResultSink,
    ServiceInfo,
)
from imputehub.domain.errors import (
    CredentialRejected,
    JobLost,
    PermanentServiceError,
    ServiceBusy,
    TransientServiceError,
)

ALL = "*"
OPS = ("find", "submit", "poll", "cancel", "fetch")
DEFAULT_RESULTS = {
    "chr20.dose.vcf.gz": b"##fileformat=VCFv4.2\n#imputed chr20\n" * 64,
    "chr20.info.gz": b"SNP\tREF\tALT\tRsq\n20:60343\tG\tA\t0.91\n",
}
DEFAULTS: dict[str, Any] = {
    "delay": {},  # op -> seconds to wait (after recording the call)
    "transient": {},  # op -> how many calls fail transiently first
    "retry_after": None,  # seconds the transient errors ask the hub to wait
    "permanent": {},  # op -> message of a permanent failure
    "lose": False,  # polls and fetches raise JobLost
    "polls_to_finish": 3,  # poll 1 queued, then running with progress, poll K final
    "outcome": "completed",  # completed | failed | cancelled: what poll K reports
    "failure_message": "imputation failed: no SNPs passed quality control",
    "results": {name: base64.b64encode(data).decode() for name, data in DEFAULT_RESULTS.items()},
    "refuse_cancel": False,
    "reject_credential": [],  # ops that answer as a service refusing the credential (401)
    # The account's job limit at the service, if any: a submit beyond it answers as
    # Michigan does ("Only N jobs per user can be executed simultaneously.").
    "busy_limit": None,
}
CHUNK = 16


def _empty_state() -> dict[str, Any]:
    return {
        "config": {ALL: {}},
        "jobs": {},
        "submissions": {},
        "failures": {},
        "calls": [],
        "cancels": [],
        "counter": 0,
    }


class FakeConnector:
    """Implements `imputehub.connectors.base.Connector` against a shared state file."""

    def __init__(self, state_path: Path, *, label: str = "main") -> None:
        self.state_path = Path(state_path)
        self.label = label  # who made the calls: one label per worker process
        self._gates: dict[str, asyncio.Event] = {}
        with self._state():
            pass

    # ---- test controls -------------------------------------------------------------

    def configure(self, key: str | None = None, **behaviour: Any) -> None:
        """Change behaviour for one job (`key`) or for every job (key None)."""
        unknown = set(behaviour) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown fake behaviour: {sorted(unknown)}")
        if "results" in behaviour:
            behaviour["results"] = {
                name: base64.b64encode(data).decode() for name, data in behaviour["results"].items()
            }
        with self._state() as state:
            state["config"].setdefault(key or ALL, {}).update(behaviour)

    def hold(self, op: str) -> asyncio.Event:
        """In-process only: calls of `op` wait (after recording) until the event is set."""
        gate = asyncio.Event()
        self._gates[op] = gate
        return gate

    def submissions(self, key: str) -> int:
        return int(self.snapshot()["submissions"].get(key, 0))

    def job(self, key: str) -> dict[str, Any] | None:
        """The service's record of the job submitted under `key`, with its external id."""
        for external_id, job in self.snapshot()["jobs"].items():
            if job["key"] == key:
                return {"external_id": external_id, **job}
        return None

    def cancels(self) -> list[str]:
        """Idempotency keys of the jobs cancelled at the service, in order."""
        return list(self.snapshot()["cancels"])

    def calls(self, op: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
        return [
            call
            for call in self.snapshot()["calls"]
            if (op is None or call["op"] == op) and (key is None or call["key"] == key)
        ]

    def snapshot(self) -> dict[str, Any]:
        with self._state(write=False) as state:
            return state

    # ---- the Connector Protocol -----------------------------------------------------

    async def check_health(self, service: ServiceInfo) -> Health:
        return Health(status=HealthStatus.HEALTHY, response_time_ms=1.0)

    async def list_panels(self, service: ServiceInfo, credential: str | None) -> list[PanelInfo]:
        return []

    async def find(
        self,
        service: ServiceInfo,
        idempotency_key: str,
        credential: str | None,
        *,
        submitted_after: datetime | None = None,
    ) -> ExternalRef | None:
        with self._state() as state:
            self._call(state, "find", idempotency_key)
            found = next(
                (ext for ext, job in state["jobs"].items() if job["key"] == idempotency_key),
                None,
            )
        await self._pause("find", idempotency_key)
        return ExternalRef(external_id=found) if found else None

    async def submit(
        self,
        service: ServiceInfo,
        job: JobSpec,
        credential: str | None,
        idempotency_key: str,
    ) -> ExternalRef:
        inputs = []
        for item in job.inputs:
            digest, size = hashlib.sha256(), 0
            async for chunk in item.open():
                digest.update(chunk)
                size += len(chunk)
            inputs.append({"name": item.name, "size": size, "sha256": digest.hexdigest()})
        with self._state() as state:
            self._call(state, "submit", idempotency_key)
            limit = self._behaviour(state, idempotency_key)["busy_limit"]
            active = sum(
                1
                for job in state["jobs"].values()
                if job["credential"] == credential
                and job["state"] in (ExternalState.QUEUED.value, ExternalState.RUNNING.value)
            )
            if limit is not None and active >= limit:
                raise ServiceBusy(
                    f"Only {limit} jobs per user can be executed simultaneously.", limit=limit
                )
            state["counter"] += 1
            external_id = f"fake-{state['counter']:06d}"
            state["jobs"][external_id] = {
                "key": idempotency_key,
                "name": job.name,
                "panel_id": job.panel_id,
                "build": job.build,
                "credential": credential,
                "secret": job.secret,
                "inputs": inputs,
                "urls": [item.url for item in job.inputs],
                "polls": 0,
                "state": ExternalState.QUEUED.value,
            }
            state["submissions"][idempotency_key] = state["submissions"].get(idempotency_key, 0) + 1
        await self._pause("submit", idempotency_key)
        return ExternalRef(external_id=external_id)

    async def poll(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> ExternalStatus:
        with self._state() as state:
            job, key = self._job(state, ref, "poll")
            conf = self._behaviour(state, key)
            if job["state"] in (ExternalState.QUEUED.value, ExternalState.RUNNING.value):
                job["polls"] += 1
                job["state"] = _state_after(job["polls"], conf)
            polls, current = job["polls"], ExternalState(job["state"])
        await self._pause("poll", key)
        logs = tuple(f"poll {n}" for n in range(1, polls + 1))
        if current == ExternalState.QUEUED:
            return ExternalStatus(state=current, queue_position=1, logs=logs)
        if current == ExternalState.RUNNING:
            finish = max(int(conf["polls_to_finish"]), 2)
            progress = 100.0 * (polls - 1) / (finish - 1)
            return ExternalStatus(state=current, progress=progress, logs=logs)
        if current == ExternalState.FAILED:
            return ExternalStatus(state=current, message=conf["failure_message"], logs=logs)
        return ExternalStatus(state=current, progress=100.0, logs=logs)

    async def cancel(self, service: ServiceInfo, ref: ExternalRef, credential: str | None) -> None:
        with self._state() as state:
            job, key = self._job(state, ref, "cancel")
            if self._behaviour(state, key)["refuse_cancel"]:
                raise PermanentServiceError("the service refused to cancel the job")
            job["state"] = ExternalState.CANCELLED.value
            state["cancels"].append(key)
        await self._pause("cancel", key)

    async def fetch_results(
        self,
        service: ServiceInfo,
        ref: ExternalRef,
        credential: str | None,
        sink: ResultSink,
    ) -> list[ResultFile]:
        with self._state() as state:
            job, key = self._job(state, ref, "fetch")
            job["fetch_secret"] = ref.secret  # what the hub handed back to decrypt with
            job["fetch_credential"] = credential
            if job["state"] != ExternalState.COMPLETED.value:
                raise PermanentServiceError(f"job {ref.external_id} has no results")
            results = {
                name: base64.b64decode(data)
                for name, data in self._behaviour(state, key)["results"].items()
            }
        await self._pause("fetch", key)
        return [await sink.store(name, _chunks(data)) for name, data in results.items()]

    # ---- internals --------------------------------------------------------------------

    @contextlib.contextmanager
    def _state(self, *, write: bool = True) -> Iterator[dict[str, Any]]:
        """Read-modify-write the state file under an exclusive lock (no awaits inside).

        Changes are saved even when the body raises: a failed call is still a call the
        service saw (and a transient failure it counted).
        """
        lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        with lock_path.open("a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = (
                    json.loads(self.state_path.read_text())
                    if self.state_path.exists()
                    else _empty_state()
                )
                try:
                    yield state
                finally:
                    if write:
                        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
                        tmp.write_text(json.dumps(state))
                        tmp.replace(self.state_path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _behaviour(self, state: dict[str, Any], key: str) -> dict[str, Any]:
        return {**DEFAULTS, **state["config"].get(ALL, {}), **state["config"].get(key, {})}

    def _call(self, state: dict[str, Any], op: str, key: str) -> None:
        """Record the call, then fail it if the behaviour says so."""
        state["calls"].append({"op": op, "key": key, "label": self.label})
        conf = self._behaviour(state, key)
        used = state["failures"].setdefault(key, {})
        if used.get(op, 0) < int(conf["transient"].get(op, 0)):
            used[op] = used.get(op, 0) + 1
            raise TransientServiceError(
                f"the service is temporarily unavailable ({op} failure {used[op]})",
                retry_after=conf["retry_after"],
            )
        if op in conf["reject_credential"]:
            raise CredentialRejected("the service refused the credential (HTTP 401)")
        if op in conf["permanent"]:
            raise PermanentServiceError(conf["permanent"][op])

    def _job(self, state: dict[str, Any], ref: ExternalRef, op: str) -> tuple[dict[str, Any], str]:
        job = state["jobs"].get(ref.external_id)
        key = job["key"] if job else ref.external_id
        self._call(state, op, key)
        if job is None or (op in ("poll", "fetch") and self._behaviour(state, key)["lose"]):
            raise JobLost(f"the service does not know job {ref.external_id}")
        return job, key

    async def _pause(self, op: str, key: str) -> None:
        delay = float(self._behaviour(self.snapshot(), key)["delay"].get(op, 0))
        if delay:
            await asyncio.sleep(delay)
        gate = self._gates.get(op)
        if gate is not None:
            await gate.wait()


def _state_after(polls: int, conf: dict[str, Any]) -> str:
    finish = max(int(conf["polls_to_finish"]), 1)
    if polls >= finish:
        return str(conf["outcome"])
    return ExternalState.QUEUED.value if polls == 1 else ExternalState.RUNNING.value


SAMPLE_SERVICE = ServiceInfo(
    id="fake", slug="fake", api_type="michigan", base_url="https://fake.example"
)
SAMPLE_INPUT = b"##fileformat=VCFv4.2\n" + b"20\t60343\t.\tG\tA\n" * 100


def sample_spec(job_id: str = "job-1") -> JobSpec:
    """A job to hand the fake directly, as the worker would."""
    return JobSpec(
        job_id=job_id,
        name="study",
        panel_id="apps@1000g-phase-3-v5@2.0.0",
        build="hg19",
        phasing="eagle",
        population="mixed",
        mode="imputation",
        r2_filter=None,
        inputs=[
            InputFile(
                name="study.vcf.gz",
                size=len(SAMPLE_INPUT),
                sha256=hashlib.sha256(SAMPLE_INPUT).hexdigest(),
                open=lambda: _chunks(SAMPLE_INPUT),
            )
        ],
    )


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]

"""The `michigan` connector: Michigan, TOPMed and H3Africa imputation servers (API v2).

They all run Cloudgene 3 with the `imputationserver2` app; protocol facts are in
../shared/reference/michigan-api.md. The service's `api_config` may name another app
(`{"app": "imputationserver2-hla"}`) and ask for AES-256 result zips
(`{"aes_encryption": true}`; ZipCrypto otherwise), and give the per-user job limit
(`{"max_jobs_per_user": 3}`; Cloudgene's default 2 otherwise).
- list_panels: the panels of the app's `refpanel` param, each with its populations (the
  `population` binded_list) and the app's `phasing` and `r2Filter` choices.
- submit: one multipart POST, streamed; `job-name` carries the hub's job id so `find` can
  recognise a job submitted just before a crash, and `password` the job's secret, so the
  hub can decrypt the result zips itself. POSTs are never retried here.
- poll: `GET /api/v2/jobs/{id}/status`; states are mapped in `states.py` (table there and in
  the README).
- fetch_results: each output file downloaded once, also across retried fetches and
  crashes: what arrives is kept in the hub's storage and a retry resumes it, the sink
  remembers the files already stored, and a file's last download is never spent on a
  retry (see `downloads.py`); zips are decrypted into their members (`results.py`).
Answers are classified in `answers.py`: 401 -> CredentialRejected; 503 and "Only N jobs per
user" -> transient with a wait; 5xx and network errors -> transient; 404 for a job -> JobLost;
any other 400 -> permanent with the server's message.

The server reads a submit's whole multipart body before it answers 503 (maintenance) or
400 "Only N jobs per user...", so `submit` first asks `GET /api/v2/server` and the user's
job list and uploads nothing the server would refuse for either (`_ready_for_upload`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from imputehub.connectors.base import (
    CredentialCheck,
    ExternalRef,
    ExternalStatus,
    Health,
    HealthStatus,
    JobSpec,
    PanelInfo,
    ResultFile,
    ResultSink,
    ServiceInfo,
)
from imputehub.connectors.clients import ClientPool
from imputehub.connectors.health_probe import probe_json
from imputehub.connectors.http import ask
from imputehub.connectors.michigan import downloads, results, states
from imputehub.connectors.michigan.answers import (
    check,
    in_maintenance,
    job_limit,
    json_object,
    maintenance,
    message_of,
)
from imputehub.connectors.multipart import MultipartBody
from imputehub.domain.errors import (
    CredentialRejected,
    PermanentServiceError,
    TransientServiceError,
)
from imputehub.domain.slots import DEFAULT_LIMITS, slot_limit

DEFAULT_APP = "imputationserver2"
HEALTH_TIMEOUT = httpx.Timeout(5.0)
# Uploads and downloads may take long between bytes on slow links; connecting should not.
TRANSFER_SECONDS = 300.0
API_SECONDS = 60.0
CONNECT_SECONDS = 15.0
MAX_PAGES = 100
# How far the server's clock may lag the hub's when `find` decides a listed job is too old to
# be the one an interrupted submit sent.
CLOCK_SKEW_SECONDS = 3600.0
MODES = {"imputation": "imputation", "qc_only": "qconly", "qconly": "qconly"}
# Cloudgene's default per-user limit of waiting + running jobs; a service's `api_config`
# says otherwise with `max_jobs_per_user` (TOPMed: 3), which the worker also updates from
# an "Only N jobs" answer (domain/slots.py, where the hub's slots follow the same figure).
DEFAULT_JOBS_PER_USER = DEFAULT_LIMITS["michigan"]
ACTIVE_STATES = frozenset({1, 2, 3})  # waiting, running, exporting
# Active jobs are among the newest: the job-limit check before an upload reads this many
# pages of the list at most (the server's own check after the upload stays the last word).
LIMIT_CHECK_PAGES = 2


def _app(service: ServiceInfo) -> str:
    return str(service.api_config.get("app", DEFAULT_APP))


def _base(service: ServiceInfo) -> str:
    return service.base_url.rstrip("/")


def _aes(service: ServiceInfo) -> bool:
    return service.api_config.get("aes_encryption") is True


def _jobs_per_user(service: ServiceInfo) -> int:
    return slot_limit("michigan", service.api_config) or DEFAULT_JOBS_PER_USER


async def _queue_size(client: httpx.AsyncClient, service: ServiceInfo) -> int | None:
    """Jobs waiting at the server, all users (`GET /api/v2/server/counters`, anonymous);
    None when it does not say. Only a figure to show: it never makes a service unhealthy."""
    try:
        response = await ask(client, "GET", f"{_base(service)}/api/v2/server/counters")
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, TransientServiceError):
        return None
    queue = body.get("queue") if isinstance(body, dict) else None
    size = queue.get("size") if isinstance(queue, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _submitted_before(job: Mapping[str, Any], oldest_ms: float | None) -> bool:
    """Whether the listed job was submitted before `oldest_ms` (epoch ms), as far as known."""
    submitted = job.get("submittedOn")
    return oldest_ms is not None and isinstance(submitted, int | float) and submitted < oldest_ms


def _headers(credential: str | None) -> dict[str, str]:
    if not credential:
        raise CredentialRejected("no API token is set for this service")
    return {"X-Auth-Token": credential}  # raw: Cloudgene takes no "Bearer" prefix


def _format_r2(value: float) -> str:
    return format(value, "g")


class MichiganConnector:
    """Holds only its clients' pool (`clients.py`): the process's, or one opening a client
    per call when none is given.

    `api_seconds` bounds a wait for one API answer, `transfer_seconds` a pause between
    bytes of an upload or download; a result download is kept in the hub's storage in
    segments of `download_segment_size` bytes as it arrives.
    """

    def __init__(
        self,
        *,
        api_seconds: float = API_SECONDS,
        transfer_seconds: float = TRANSFER_SECONDS,
        download_segment_size: int = downloads.SEGMENT_SIZE,
        clients: ClientPool | None = None,
    ) -> None:
        self.clients = clients or ClientPool(keep_alive=False)
        self.segment_size = download_segment_size
        connect = min(CONNECT_SECONDS, api_seconds)
        self.api_timeout = httpx.Timeout(api_seconds, connect=connect)
        self.transfer_timeout = httpx.Timeout(transfer_seconds, connect=connect)

    async def check_health(self, service: ServiceInfo) -> Health:
        async with self.clients.client(service, timeout=HEALTH_TIMEOUT) as client:
            health = await probe_json(
                client,
                f"{_base(service)}/api/v2/server",
                what="answer",
                detail=message_of,
                maintenance_status=503,
                in_maintenance=in_maintenance,
            )
            if health.status != HealthStatus.HEALTHY:
                return health
            return replace(health, queue_size=await _queue_size(client, service))

    async def verify_credential(self, service: ServiceInfo, credential: str) -> CredentialCheck:
        async with self._api(service) as client:
            response = await ask(
                client, "POST", f"{_base(service)}/api/v2/tokens/verify", data={"token": credential}
            )
        check(response)
        body = json_object(response)
        expires_at: datetime | None = None
        if isinstance(body.get("expire"), str):
            try:
                expires_at = datetime.fromisoformat(body["expire"])
            except ValueError:
                expires_at = None
        valid = body.get("valid") is True
        message = str(body.get("message") or ("valid" if valid else "invalid"))
        return CredentialCheck(valid=valid, message=message, expires_at=expires_at)

    async def list_panels(self, service: ServiceInfo, credential: str | None) -> list[PanelInfo]:
        # Cloudgene 3 serves the app anonymously, listing what an anonymous caller may use;
        # with a token, what that account may use.
        headers = {"X-Auth-Token": credential} if credential else {}
        app = _app(service)
        async with self._api(service) as client:
            response = await ask(client, "GET", f"{_base(service)}/api/v2/server", headers=headers)
            check(response)
            apps = json_object(response).get("apps") or []
            full_ids = [
                str(a["id"])
                for a in apps
                if isinstance(a, Mapping) and str(a.get("id", "")).split("@")[0] == app
            ]
            if not full_ids:
                raise PermanentServiceError(f"the service offers no application '{app}'")
            response = await ask(
                client,
                "GET",
                f"{_base(service)}/api/v2/server/apps/{quote(full_ids[0])}",
                headers=headers,
            )
            check(response)
            details = json_object(response)
        return app_panels(details)

    async def find(
        self,
        service: ServiceInfo,
        idempotency_key: str,
        credential: str | None,
        *,
        submitted_after: datetime | None = None,
    ) -> ExternalRef | None:
        headers = _headers(credential)
        # The list is newest first: a job submitted before the hub's intent (less the clocks'
        # disagreement) and everything after it are older than ours. Without this, every
        # interrupted submit paged through the user's whole history.
        oldest_ms = (
            None
            if submitted_after is None
            else (submitted_after.timestamp() - CLOCK_SKEW_SECONDS) * 1000
        )
        async with self._api(service) as client:
            page: int | None = 1
            for _ in range(MAX_PAGES):
                if page is None:
                    break
                response = await ask(
                    client,
                    "GET",
                    f"{_base(service)}/api/v2/jobs",
                    params={"page": page},
                    headers=headers,
                )
                check(response)
                body = json_object(response)
                for job in body.get("data") or []:
                    if not isinstance(job, Mapping):
                        continue
                    if job.get("name") == idempotency_key:
                        return ExternalRef(external_id=str(job["id"]))
                    if _submitted_before(job, oldest_ms):
                        return None
                following = body.get("next")
                page = following if isinstance(following, int) and following > page else None
        return None

    async def submit(
        self,
        service: ServiceInfo,
        job: JobSpec,
        credential: str | None,
        idempotency_key: str,
    ) -> ExternalRef:
        headers = _headers(credential)
        mode = MODES.get(job.mode)
        if mode is None:
            raise PermanentServiceError(f"the service has no mode '{job.mode}'")
        fields: list[tuple[str, str]] = [
            ("refpanel", job.panel_id),
            ("build", job.build),
            ("phasing", job.phasing),
        ]
        if job.population:
            fields.append(("population", job.population))
        fields.append(("mode", mode))
        if job.r2_filter is not None:
            fields.append(("r2Filter", _format_r2(job.r2_filter)))
        if job.secret:
            fields.append(("password", job.secret))
        if _aes(service):
            fields.append(("aesEncryption", "true"))  # a checkbox: sent only when on
        fields.append(("job-name", idempotency_key))
        async with self._api(service) as client:
            await self._ready_for_upload(client, service, headers)
        body = MultipartBody(fields=fields, files=[("files", f) for f in job.inputs])
        url = f"{_base(service)}/api/v2/jobs/submit/{quote(_app(service))}"
        async with self.clients.client(service, timeout=self.transfer_timeout) as client:
            response = await ask(
                client,
                "POST",
                url,
                content=body.stream(),
                headers={
                    **headers,
                    "Content-Type": body.content_type,
                    "Content-Length": str(body.length()),
                },
            )
        check(response)
        answer = json_object(response)
        if not answer.get("success") or not answer.get("id"):
            raise PermanentServiceError(
                f"the service did not accept the job: {answer.get('message') or answer}"
            )
        return ExternalRef(external_id=str(answer["id"]), secret=job.secret)

    async def _ready_for_upload(
        self, client: httpx.AsyncClient, service: ServiceInfo, headers: dict[str, str]
    ) -> None:
        """Raise what the server would answer after the whole upload, before sending a byte:
        maintenance (`GET /api/v2/server`), or the account at its job limit (waiting, running
        and exporting jobs among the newest LIMIT_CHECK_PAGES pages of its job list)."""
        response = await ask(client, "GET", f"{_base(service)}/api/v2/server", headers=headers)
        check(response)
        if in_maintenance(json_object(response)):
            raise maintenance()
        limit = _jobs_per_user(service)
        active = 0
        page: int | None = 1
        for _ in range(LIMIT_CHECK_PAGES):
            if page is None:
                break
            response = await ask(
                client,
                "GET",
                f"{_base(service)}/api/v2/jobs",
                params={"page": page},
                headers=headers,
            )
            check(response)
            body = json_object(response)
            jobs = [job for job in body.get("data") or [] if isinstance(job, Mapping)]
            active += sum(1 for job in jobs if job.get("state") in ACTIVE_STATES)
            if active >= limit:
                raise job_limit(
                    f"Only {limit} jobs per user can be executed simultaneously; "
                    f"{active} are waiting or running"
                )
            following = body.get("next")
            page = following if isinstance(following, int) and following > page else None

    async def poll(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> ExternalStatus:
        return states.to_status(await self._job(service, ref, credential))

    async def cancel(self, service: ServiceInfo, ref: ExternalRef, credential: str | None) -> None:
        headers = _headers(credential)
        url = f"{_base(service)}/api/v2/jobs/{quote(ref.external_id)}/cancel"
        async with self._api(service) as client:
            response = await ask(client, "GET", url, headers=headers)
        if response.status_code == 404:
            return  # nothing left to cancel
        check(response, job=ref.external_id)

    async def fetch_results(
        self,
        service: ServiceInfo,
        ref: ExternalRef,
        credential: str | None,
        sink: ResultSink,
    ) -> list[ResultFile]:
        job = await self._job(service, ref, credential)  # with each file's downloads left
        if states.is_retired(job):  # like imputationbot: nothing left to download
            raise PermanentServiceError(states.RETIRED_MESSAGE)
        stored: list[ResultFile] = []
        # Downloads are anonymous (the hash is the secret) and may redirect to object storage:
        # each hop off the server's own origin must pass the URL guard.
        async with self.clients.client(
            service,
            timeout=self.transfer_timeout,
            guard=True,
            follow_redirects=True,
            guard_label="the Michigan server",
        ) as client:
            with tempfile.TemporaryDirectory(prefix="imputehub-michigan-") as tmp:
                for index, (file, checksum) in enumerate(
                    results.with_checksums(results.output_files(job))
                ):
                    earlier = await sink.fetched(file.source)
                    if earlier is not None:  # stored by an earlier attempt: spend no download
                        stored.extend(earlier)
                        continue
                    kept = sink.kept_download(file.source)
                    download = downloads.Download(
                        client=client,
                        base_url=_base(service),
                        file=file,
                        kept=kept,
                        target=Path(tmp) / f"{index}.download",
                        checksum=checksum,
                        segment_size=self.segment_size,
                    )
                    try:
                        files = await self._store(download, ref.secret, sink)
                    except PermanentServiceError:
                        await kept.forget()  # the job ends here: its bytes are no use
                        raise
                    await sink.mark_fetched(file.source, files)
                    await kept.forget()
                    download.target.unlink()
                    stored.extend(files)
        return stored

    async def _store(
        self, download: downloads.Download, secret: str | None, sink: ResultSink
    ) -> list[ResultFile]:
        """Download the file (or take it from storage) and store it, zips decrypted."""
        notes = await download.run()
        name, path = download.file.name, download.target
        if not (name.endswith(".zip") and secret):
            return [await results.store(path, name, sink)]
        try:
            return await results.store_zip_members(path, name, secret, sink)
        except results.DamagedZip as exc:
            error = downloads.damage_verdict(name, notes, exc.detail)
            await download.discard_damaged(notes)
            raise error from exc

    def _api(self, service: ServiceInfo) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """The service's API client (`clients.py`); headers go with each request."""
        return self.clients.client(service, timeout=self.api_timeout)

    async def _job(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> dict[str, Any]:
        headers = _headers(credential)
        url = f"{_base(service)}/api/v2/jobs/{quote(ref.external_id)}/status"
        async with self._api(service) as client:
            response = await ask(client, "GET", url, headers=headers)
        check(response, job=ref.external_id)
        return json_object(response)


def app_panels(details: Mapping[str, Any]) -> list[PanelInfo]:
    """The panels of `GET /api/v2/server/apps/{id}`, with their populations and the app's
    phasing and r2Filter choices."""
    params = {str(p.get("id")): p for p in details.get("params") or [] if isinstance(p, Mapping)}
    populations = _bound_choices(params.get("population"))
    phasing = _choices(params.get("phasing"))
    r2_filters = tuple(
        number
        for number in (_number(key) for key in _choices(params.get("r2Filter")))
        if number is not None
    )
    panels: list[PanelInfo] = []
    for entry in (params.get("refpanel") or {}).get("values") or []:
        if not isinstance(entry, Mapping) or not entry.get("key"):
            continue
        key = str(entry["key"])
        label = str(entry.get("value") or key)
        build = "hg38" if ("hg38" in label.lower() or "grch38" in label.lower()) else "hg19"
        panels.append(
            PanelInfo(
                panel_id=key,
                display_name=label,
                build=build,
                populations=populations.get(key, ()),
                phasing=phasing,
                r2_filters=r2_filters,
            )
        )
    return panels


def _choices(param: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The keys a `list` param offers: `values` is a list of `{"key", "value"}` (Cloudgene 3),
    or a mapping of key to label (as written in the app's cloudgene.yaml)."""
    values = (param or {}).get("values")
    if isinstance(values, Mapping):
        return tuple(str(key) for key in values)
    if isinstance(values, list):
        return tuple(
            str(v["key"]) for v in values if isinstance(v, Mapping) and v.get("key") is not None
        )
    return ()


def _bound_choices(param: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """A `binded_list` param's choices per bound value (here: per panel id).

    Cloudgene 3 sends a list with one entry per panel, `{"key": "apps@<panel>@<version>",
    "label": ..., "values": [{"key": "eur", "value": "EUR"}, ...]}`; a mapping of panel id to
    such a `values` list is read too.
    """
    values = (param or {}).get("values")
    entries: list[tuple[Any, Any]] = []
    if isinstance(values, Mapping):
        entries = list(values.items())
    elif isinstance(values, list):
        entries = [(v.get("key"), v) for v in values if isinstance(v, Mapping)]
    bound: dict[str, tuple[str, ...]] = {}
    for key, entry in entries:
        if key is None:
            continue
        choices = _choices(entry if isinstance(entry, Mapping) else {"values": entry})
        bound[str(key)] = choices
    return bound


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0.0 <= number <= 1.0 else None

"""The `michigan` connector: Michigan, TOPMed and H3Africa imputation servers (API v2).

They all run Cloudgene 3 with the `imputationserver2` app; protocol facts are in
../shared/reference/michigan-api.md. The service's `api_config` may name another app
(`{"app": "imputationserver2-hla"}`) and ask for AES-256 result zips
(`{"aes_encryption": true}`; ZipCrypto otherwise).
- submit: one multipart POST, streamed; `job-name` carries the hub's job id so `find` can
  recognise a job submitted just before a crash, and `password` the job's secret, so the
  hub can decrypt the result zips itself. POSTs are never retried here.
- poll: `GET /api/v2/jobs/{id}/status`; states are mapped in `states.py` (table there and in
  the README).
- fetch_results: each output file downloaded exactly once, also across retried fetches:
  the sink remembers the files already stored (see `results.py`).
Answers are classified in `answers.py`: 401 -> CredentialRejected; 503 and "Only N jobs per
user" -> transient with a wait; 5xx and network errors -> transient; 404 for a job -> JobLost;
any other 400 -> permanent with the server's message.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
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
    JobSpec,
    PanelInfo,
    ResultFile,
    ResultSink,
    ServiceInfo,
)
from imputehub.connectors.health_probe import probe_json
from imputehub.connectors.http import transient_client
from imputehub.connectors.michigan import results, states
from imputehub.connectors.michigan.answers import check, json_object, message_of
from imputehub.connectors.multipart import MultipartBody
from imputehub.domain.errors import CredentialRejected, PermanentServiceError

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


def _app(service: ServiceInfo) -> str:
    return str(service.api_config.get("app", DEFAULT_APP))


def _base(service: ServiceInfo) -> str:
    return service.base_url.rstrip("/")


def _aes(service: ServiceInfo) -> bool:
    return service.api_config.get("aes_encryption") is True


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
    """Stateless; every call opens its own HTTP client.

    `api_seconds` bounds a wait for one API answer, `transfer_seconds` a pause between
    bytes of an upload or download.
    """

    def __init__(
        self, *, api_seconds: float = API_SECONDS, transfer_seconds: float = TRANSFER_SECONDS
    ) -> None:
        connect = min(CONNECT_SECONDS, api_seconds)
        self.api_timeout = httpx.Timeout(api_seconds, connect=connect)
        self.transfer_timeout = httpx.Timeout(transfer_seconds, connect=connect)

    async def check_health(self, service: ServiceInfo) -> Health:
        return await probe_json(
            f"{_base(service)}/api/v2/server",
            http_timeout=HEALTH_TIMEOUT,
            what="answer",
            detail=message_of,
            maintenance_status=503,
            # The misspelling is the real servers' own.
            in_maintenance=lambda body: bool(body.get("maintenace") or body.get("maintenance")),
        )

    async def verify_credential(self, service: ServiceInfo, credential: str) -> CredentialCheck:
        async with transient_client(self.api_timeout) as client:
            response = await client.post(
                f"{_base(service)}/api/v2/tokens/verify", data={"token": credential}
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
        headers = _headers(credential)
        app = _app(service)
        async with transient_client(self.api_timeout, headers=headers) as client:
            response = await client.get(f"{_base(service)}/api/v2/server")
            check(response)
            apps = json_object(response).get("apps") or []
            full_ids = [
                str(a["id"])
                for a in apps
                if isinstance(a, Mapping) and str(a.get("id", "")).split("@")[0] == app
            ]
            if not full_ids:
                raise PermanentServiceError(f"the service offers no application '{app}'")
            response = await client.get(f"{_base(service)}/api/v2/server/apps/{quote(full_ids[0])}")
            check(response)
            details = json_object(response)
        return _panels(details)

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
        async with transient_client(self.api_timeout, headers=headers) as client:
            page: int | None = 1
            for _ in range(MAX_PAGES):
                if page is None:
                    break
                response = await client.get(f"{_base(service)}/api/v2/jobs", params={"page": page})
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
        body = MultipartBody(fields=fields, files=[("files", f) for f in job.inputs])
        headers = {
            **headers,
            "Content-Type": body.content_type,
            "Content-Length": str(body.length()),
        }
        url = f"{_base(service)}/api/v2/jobs/submit/{quote(_app(service))}"
        async with transient_client(self.transfer_timeout) as client:
            response = await client.post(url, content=body.stream(), headers=headers)
        check(response)
        answer = json_object(response)
        if not answer.get("success") or not answer.get("id"):
            raise PermanentServiceError(
                f"the service did not accept the job: {answer.get('message') or answer}"
            )
        return ExternalRef(external_id=str(answer["id"]), secret=job.secret)

    async def poll(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> ExternalStatus:
        return states.to_status(await self._job(service, ref, credential))

    async def cancel(self, service: ServiceInfo, ref: ExternalRef, credential: str | None) -> None:
        headers = _headers(credential)
        url = f"{_base(service)}/api/v2/jobs/{quote(ref.external_id)}/cancel"
        async with transient_client(self.api_timeout, headers=headers) as client:
            response = await client.get(url)
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
        job = await self._job(service, ref, credential)
        if states.is_retired(job):  # like imputationbot: nothing left to download
            raise PermanentServiceError(states.RETIRED_MESSAGE)
        stored: list[ResultFile] = []
        # Downloads are anonymous (the hash is the secret) and may redirect to object storage.
        async with transient_client(self.transfer_timeout, follow_redirects=True) as client:
            with tempfile.TemporaryDirectory(prefix="imputehub-michigan-") as tmp:
                for index, file in enumerate(results.output_files(job)):
                    earlier = await sink.fetched(file.source)
                    if earlier is not None:  # stored by an earlier attempt: spend no download
                        stored.extend(earlier)
                        continue
                    path = Path(tmp) / f"{index}.download"
                    await results.download(client, _base(service), file, path)
                    if file.name.endswith(".zip") and ref.secret:
                        files = await results.store_zip_members(path, file.name, ref.secret, sink)
                    else:
                        files = [await results.store(path, file.name, sink)]
                    await sink.mark_fetched(file.source, files)
                    stored.extend(files)
                    path.unlink()
        return stored

    async def _job(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> dict[str, Any]:
        headers = _headers(credential)
        url = f"{_base(service)}/api/v2/jobs/{quote(ref.external_id)}/status"
        async with transient_client(self.api_timeout, headers=headers) as client:
            response = await client.get(url)
        check(response, job=ref.external_id)
        return json_object(response)


def _panels(details: Mapping[str, Any]) -> list[PanelInfo]:
    params = [p for p in details.get("params") or [] if isinstance(p, Mapping)]
    refpanel = next((p for p in params if p.get("id") == "refpanel"), None)
    population = next((p for p in params if p.get("id") == "population"), None)
    by_panel: Mapping[str, Any] = {}
    if population is not None and isinstance(population.get("values"), Mapping):
        by_panel = population["values"]
    panels: list[PanelInfo] = []
    for entry in (refpanel or {}).get("values") or []:
        if not isinstance(entry, Mapping) or not entry.get("key"):
            continue
        key = str(entry["key"])
        label = str(entry.get("value") or key)
        populations = tuple(
            str(p["key"])
            for p in by_panel.get(key) or []
            if isinstance(p, Mapping) and p.get("key")
        )
        build = "hg38" if ("hg38" in label.lower() or "grch38" in label.lower()) else "hg19"
        panels.append(
            PanelInfo(panel_id=key, display_name=label, build=build, populations=populations)
        )
    return panels

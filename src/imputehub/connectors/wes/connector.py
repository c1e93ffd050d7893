"""The `ga4gh_wes` connector: GA4GH Workflow Execution Service 1.0/1.1 servers.

The service's `api_config` (nothing secret in it):
- `workflow_url`: the workflow to run; without it the hub attaches its own
  `imputehub/workflows/impute.cwl` (runs `imputehub engine run`) and names it `impute.cwl`;
- `workflow_type` ("CWL"), `workflow_type_version` ("v1.2"), and optionally
  `workflow_engine`, `workflow_engine_version` (1.1; sapporo requires an engine),
  `workflow_engine_parameters` (an object);
- `params`: which workflow parameter receives which job field. Defaults, matching
  impute.cwl: `{"inputs": "inputs", "panel": "panel", "mode": "mode", "r2_filter":
  "r2_filter"}`; `build`, `population`, `phasing` and `job_name` are sent only when mapped
  here; a field mapped to null is not sent. `extra_params` (an object) is sent as is;
- `panels`: the panels the service offers, `[{panel_id, display_name, build, populations?,
  location?}]`; a panel with a `location` (a path or URL the server's workflow can read) is
  sent as a CWL File there, any other as its panel id (a string);
- `inputs_as`: "attachment" (the default): input files are `workflow_attachment` parts
  named `inputs/<name>`, given to the workflow as CWL Files at those relative locations;
  "url": the files stay at the hub and the workflow gets short-lived signed links to them
  (`InputFile.url`, needs IMPUTEHUB_PUBLIC_URL), for servers that take no attachments (the
  GA4GH Starter Kit, DNAstack).
- auth: see `auth.py`.
Submit is one streamed multipart POST /runs, tagged `{"imputehub_job_id": <key>}` so `find`
recognises a run submitted just before a crash; POSTs are never retried here. States: see
`states.py`; result files: see `outputs.py`; answers: see `answers.py`.
Log URLs: see `logs.py`; `drs://` results: `drs.py`; each download's checks and errors:
`downloads.py`. A download that breaks off leaves no file: the whole fetch is retried.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from imputehub.connectors.base import (
    CredentialCheck,
    ExternalRef,
    ExternalState,
    ExternalStatus,
    Health,
    InputFile,
    JobSpec,
    PanelInfo,
    ResultFile,
    ResultSink,
    ServiceInfo,
)
from imputehub.connectors.clients import ClientPool
from imputehub.connectors.health_probe import probe_json
from imputehub.connectors.http import ask, read_answer
from imputehub.connectors.multipart import MultipartBody
from imputehub.connectors.wes import states
from imputehub.connectors.wes.answers import check, json_object, message_of
from imputehub.connectors.wes.auth import TokenCache
from imputehub.connectors.wes.downloads import Download, checked, refused
from imputehub.connectors.wes.drs import drs_scheme, resolve_drs, result_name
from imputehub.connectors.wes.logs import with_fetched_logs
from imputehub.connectors.wes.outputs import output_files, same_origin
from imputehub.domain.errors import CredentialRejected, PermanentServiceError, TransientServiceError
from imputehub.workflows import IMPUTE_CWL

SERVICE = "the WES service"
TAG = "imputehub_job_id"
HEALTH_TIMEOUT = httpx.Timeout(5.0)
API_TIMEOUT = httpx.Timeout(60.0, connect=15.0)
TRANSFER_TIMEOUT = httpx.Timeout(300.0, connect=15.0)
CHUNK_SIZE = 1024 * 1024
PAGE_SIZE = 100
MAX_PAGES = 20  # find looks at the newest 2,000 runs at most
MAX_RUN_LOOKUPS = 200  # ... and asks for the tags of at most this many one by one
DEFAULT_PARAMS: dict[str, str | None] = {
    "inputs": "inputs",
    "panel": "panel",
    "mode": "mode",
    "r2_filter": "r2_filter",
    "build": None,
    "population": None,
    "phasing": None,
    "job_name": None,
}


async def ask_wes(
    client: httpx.AsyncClient, method: str, url: str, **options: Any
) -> httpx.Response:
    """A request whose answer is read up to the hub's limit (see `connectors/http.py`)."""
    return await ask(client, method, url, service=SERVICE, **options)


async def _read(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def _local_file(path: Path, name: str) -> InputFile:
    return InputFile(name=name, size=path.stat().st_size, sha256="", open=lambda: _read(path))


def _tags_of(run: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A run's tags: listed with the run (sapporo) or inside its request (the spec)."""
    for holder in (run, run.get("request")):
        if isinstance(holder, Mapping) and isinstance(holder.get("tags"), Mapping):
            return holder["tags"]  # type: ignore[no-any-return]
    return None


class WesConnector:
    """Holds a cache of OAuth2 access tokens and its clients' pool (`clients.py`): the
    process's, or one opening a client per call when none is given."""

    def __init__(self, *, clients: ClientPool | None = None) -> None:
        self.clients = clients or ClientPool(keep_alive=False)
        self.tokens = TokenCache(self.clients)

    def _client(
        self,
        service: ServiceInfo,
        timeout: httpx.Timeout,
        *,
        guard: bool = False,
        follow_redirects: bool = False,
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """The service's pooled client of that kind; headers go with each request."""
        return self.clients.client(
            service,
            timeout=timeout,
            guard=guard,
            follow_redirects=follow_redirects,
            label=SERVICE,
        )

    def base_url(self, service: ServiceInfo) -> str:
        """Where the WES API of this service lives (`.../ga4gh/wes/v1`)."""
        return service.base_url.rstrip("/")

    def auth_config(self, service: ServiceInfo) -> dict[str, Any]:
        """The settings `auth.py` reads (the service's own, unless a dialect fixes a scheme)."""
        return service.api_config

    async def _headers(self, service: ServiceInfo, credential: str | None) -> dict[str, str]:
        return await self.tokens.headers(self.auth_config(service), credential)

    def _check(
        self,
        service: ServiceInfo,
        credential: str | None,
        response: httpx.Response,
        run: str | None = None,
    ) -> None:
        if response.status_code in (401, 403):
            self.tokens.forget(self.auth_config(service), credential)
        check(response, run=run)

    async def check_health(self, service: ServiceInfo) -> Health:
        async with self._client(service, HEALTH_TIMEOUT) as client:
            return await probe_json(
                client,
                f"{self.base_url(service)}/service-info",
                what="service-info",
                detail=message_of,
            )

    async def verify_credential(self, service: ServiceInfo, credential: str) -> CredentialCheck:
        """Listing one run needs the credential on servers that check one."""
        try:
            headers = await self._headers(service, credential)
            async with self._client(service, API_TIMEOUT) as client:
                response = await ask_wes(
                    client,
                    "GET",
                    f"{self.base_url(service)}/runs",
                    params={"page_size": 1},
                    headers=headers,
                )
            self._check(service, credential, response)
        except CredentialRejected as exc:
            return CredentialCheck(valid=False, message=exc.message)
        return CredentialCheck(valid=True, message="the WES service accepted the credential")

    async def list_panels(self, service: ServiceInfo, credential: str | None) -> list[PanelInfo]:
        panels: list[PanelInfo] = []
        for entry in service.api_config.get("panels") or []:
            if not isinstance(entry, Mapping) or not entry.get("panel_id"):
                continue
            panels.append(
                PanelInfo(
                    panel_id=str(entry["panel_id"]),
                    display_name=str(entry.get("display_name") or entry["panel_id"]),
                    build=str(entry.get("build") or "hg38"),
                    populations=tuple(str(p) for p in entry.get("populations") or ()),
                    description=str(entry.get("description") or ""),
                )
            )
        return panels

    async def find(
        self,
        service: ServiceInfo,
        idempotency_key: str,
        credential: str | None,
        *,
        submitted_after: datetime | None = None,
    ) -> ExternalRef | None:
        headers = await self._headers(service, credential)
        lookups = 0
        async with self._client(service, API_TIMEOUT) as client:
            async for runs in self._run_pages(client, service, credential, headers):
                for run in runs:
                    if not isinstance(run, Mapping) or not run.get("run_id"):
                        continue
                    run_id = str(run["run_id"])
                    tags = _tags_of(run)
                    if tags is None and lookups < MAX_RUN_LOOKUPS:
                        lookups += 1
                        detail = await ask_wes(
                            client,
                            "GET",
                            f"{self.base_url(service)}/runs/{quote(run_id)}",
                            headers=headers,
                        )
                        if detail.status_code == 404:
                            continue  # deleted between the list and now
                        self._check(service, credential, detail)
                        tags = _tags_of(json_object(detail))
                    if tags is not None and tags.get(TAG) == idempotency_key:
                        return ExternalRef(external_id=run_id)
        return None

    async def _run_pages(
        self,
        client: httpx.AsyncClient,
        service: ServiceInfo,
        credential: str | None,
        headers: dict[str, str],
    ) -> AsyncIterator[list[Any]]:
        """The server's runs, newest first, one page at a time (`next_page_token` paging)."""
        token: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, str | int] = {"page_size": PAGE_SIZE}
            if token:
                params["page_token"] = token
            response = await ask_wes(
                client, "GET", f"{self.base_url(service)}/runs", params=params, headers=headers
            )
            self._check(service, credential, response)
            body = json_object(response)
            runs = body.get("runs")
            if runs is None:
                runs = body.get("workflows")  # wes-service and toil
            yield runs if isinstance(runs, list) else []
            following = body.get("next_page_token")
            if not following or following == token:
                return
            token = str(following)

    async def submit(
        self,
        service: ServiceInfo,
        job: JobSpec,
        credential: str | None,
        idempotency_key: str,
    ) -> ExternalRef:
        headers = await self._headers(service, credential)
        content, content_headers = self._submission(service, job, idempotency_key)
        async with self._client(service, TRANSFER_TIMEOUT) as client:
            response = await ask_wes(
                client,
                "POST",
                f"{self.base_url(service)}/runs",
                content=content,
                headers={**headers, **content_headers},
            )
        self._check(service, credential, response)
        run_id = json_object(response).get("run_id")
        if not run_id:
            raise PermanentServiceError("the WES service accepted the run but gave no run_id")
        return ExternalRef(external_id=str(run_id), secret=job.secret)

    def _submission(
        self, service: ServiceInfo, job: JobSpec, idempotency_key: str
    ) -> tuple[AsyncIterator[bytes], dict[str, str]]:
        """The POST /runs body (streamed multipart/form-data) and its headers."""
        config = service.api_config
        by_url = inputs_by_url(config)
        attachments: list[InputFile] = []
        workflow_url = config.get("workflow_url")
        if not workflow_url:
            workflow_url = IMPUTE_CWL.name
            attachments.append(_local_file(IMPUTE_CWL, IMPUTE_CWL.name))
        if not by_url:
            attachments.extend(replace(file, name=f"inputs/{file.name}") for file in job.inputs)
        fields: list[tuple[str, str]] = [
            ("workflow_params", json.dumps(workflow_params(config, job, by_url=by_url))),
            ("workflow_type", str(config.get("workflow_type") or "CWL")),
            ("workflow_type_version", str(config.get("workflow_type_version") or "v1.2")),
            ("tags", json.dumps({TAG: idempotency_key})),
            ("workflow_url", str(workflow_url)),
        ]
        for name in ("workflow_engine", "workflow_engine_version"):
            if config.get(name):
                fields.append((name, str(config[name])))
        if config.get("workflow_engine_parameters"):
            fields.append(
                ("workflow_engine_parameters", json.dumps(config["workflow_engine_parameters"]))
            )
        body = MultipartBody(fields=fields, files=[("workflow_attachment", f) for f in attachments])
        return body.stream(), {
            "Content-Type": body.content_type,
            "Content-Length": str(body.length()),
        }

    async def poll(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> ExternalStatus:
        run = await self._run(service, ref, credential)
        headers = await self._headers(service, credential)
        base = self.base_url(service)
        run, notes = await with_fetched_logs(
            run,
            base,
            headers,
            lambda: self._client(service, API_TIMEOUT, guard=True, follow_redirects=True),
        )
        return states.to_status(run, notes)

    async def cancel(self, service: ServiceInfo, ref: ExternalRef, credential: str | None) -> None:
        headers = await self._headers(service, credential)
        url = f"{self.base_url(service)}/runs/{quote(ref.external_id)}/cancel"
        async with self._client(service, API_TIMEOUT) as client:
            response = await ask_wes(client, "POST", url, headers=headers)
        if response.status_code == 404:
            return  # nothing left to cancel
        self._check(service, credential, response, run=ref.external_id)

    async def fetch_results(
        self,
        service: ServiceInfo,
        ref: ExternalRef,
        credential: str | None,
        sink: ResultSink,
    ) -> list[ResultFile]:
        run = await self._run(service, ref, credential)
        state = states.state_of(run.get("state"))
        if state is not ExternalState.COMPLETED:
            raise PermanentServiceError(
                f"the run is {run.get('state')}, not COMPLETE: it has no results to fetch"
            )
        files = output_files(run.get("outputs"), self.base_url(service))
        if not files:
            raise PermanentServiceError("the workflow run finished without any output files")
        base = self.base_url(service)
        headers = await self._headers(service, credential)
        stored: list[ResultFile] = []
        async with self._client(
            service, TRANSFER_TIMEOUT, guard=True, follow_redirects=True
        ) as client:
            for file in files:
                if urlsplit(file.url).scheme == "drs":
                    source = await resolve_drs(
                        client,
                        file.url,
                        scheme=drs_scheme(service.api_config),
                        wes_base=base,
                        credential_headers=headers,
                    )
                    file = replace(file, name=result_name(file, source))
                else:
                    source = Download(url=file.url, send_credential=same_origin(file.url, base))
                # The credential goes only to the WES server itself, never to storage links.
                sent = {**(headers if source.send_credential else {}), **source.headers}
                try:
                    async with client.stream("GET", source.url, headers=sent) as response:
                        if response.status_code >= 400:
                            answer = await read_answer(response, service=SERVICE)
                            if source.send_credential and answer.status_code in (401, 403):
                                self._check(service, credential, answer)
                            refused(answer, file.name)
                        chunks = checked(response.aiter_bytes(CHUNK_SIZE), file.name, source)
                        stored.append(await sink.store(file.name, chunks))
                except httpx.TransportError as exc:
                    # Nothing of the broken file is kept (storage writes are atomic); the
                    # worker retries the whole fetch, which replaces what was stored.
                    raise TransientServiceError(
                        f"the download of result {file.name} broke off "
                        f"({type(exc).__name__}); it will be fetched again"
                    ) from exc
                except httpx.InvalidURL as exc:
                    raise PermanentServiceError(
                        f"the service gives result {file.name} an invalid URL"
                    ) from exc
        return stored

    async def _run(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> dict[str, Any]:
        headers = await self._headers(service, credential)
        url = f"{self.base_url(service)}/runs/{quote(ref.external_id)}"
        timeouts = API_TIMEOUT
        async with self._client(service, timeouts) as client:
            try:
                response = await ask_wes(client, "GET", url, headers=headers)
            except httpx.TimeoutException as exc:
                raise TransientServiceError(
                    f"the WES service did not answer within {timeouts.read:g} s "
                    "when asked about the run; it will be asked again"
                ) from exc
        self._check(service, credential, response, run=ref.external_id)
        return json_object(response)


def inputs_by_url(config: Mapping[str, Any]) -> bool:
    """Whether inputs travel as signed links (`inputs_as: url`) or as attachments."""
    chosen = config.get("inputs_as", "attachment")
    if chosen not in ("attachment", "url"):
        raise PermanentServiceError(
            f"inputs_as {chosen!r} in the service settings is neither 'attachment' nor 'url'"
        )
    return bool(chosen == "url")


def input_location(file: InputFile, *, by_url: bool) -> str:
    """Where the server finds an input: its signed hub link, or the attachment's path."""
    if not by_url:
        return f"inputs/{file.name}"
    if not file.url:
        raise PermanentServiceError(
            "this service fetches input files from the hub by link, but the hub has no "
            "public address: an admin must set IMPUTEHUB_PUBLIC_URL"
        )
    return file.url


def workflow_params(config: Mapping[str, Any], job: JobSpec, *, by_url: bool) -> dict[str, Any]:
    """The job's fields as the workflow's parameters, named as the service's `params` say."""
    names = {**DEFAULT_PARAMS, **(config.get("params") or {})}
    params: dict[str, Any] = dict(config.get("extra_params") or {})
    panel: Any = job.panel_id
    for entry in config.get("panels") or []:
        if (
            isinstance(entry, Mapping)
            and entry.get("panel_id") == job.panel_id
            and entry.get("location")
        ):
            panel = {"class": "File", "location": str(entry["location"])}
    values: dict[str, Any] = {
        "inputs": [
            {"class": "File", "location": input_location(f, by_url=by_url)} for f in job.inputs
        ],
        "panel": panel,
        "mode": job.mode,
        "r2_filter": job.r2_filter,
        "build": job.build,
        "population": job.population,
        "phasing": job.phasing,
        "job_name": job.name,
    }
    for field_name, value in values.items():
        param = names.get(field_name)
        if param and value is not None:
            params[str(param)] = value
    return params

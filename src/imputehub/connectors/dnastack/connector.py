"""The `dnastack` connector: DNAstack Workbench's eWES, a dialect of GA4GH WES.

The service's `base_url` is the Workbench's eWES endpoint, the part before the namespace
(e.g. `https://workspaces.dnastack.com/api/ewes`); the WES API lives under
`{base_url}/{namespace}/ga4gh/wes/v1`. Its `api_config` (nothing secret in it):
- `namespace` (required): the Workbench namespace the runs belong to;
- `token_url`, `client_id` (required), `resource`, `scope`, `audience` (optional): the
  OAuth2 client-credentials grant; the service's credential is the client secret;
- `workflow_url` (required): a workflow the Workbench already has — DNAstack takes no
  workflow attachments, so the hub cannot bring its own; `workflow_type` ("WDL"),
  `workflow_type_version` ("1.0"), and optionally `workflow_name`, `engine_id` and
  `workflow_engine_parameters` (an object);
- `params`, `extra_params`, `panels`: as for `ga4gh_wes` (see wes/connector.py).
Inputs always travel as the hub's short-lived signed links (`InputFile.url`, needs
IMPUTEHUB_PUBLIC_URL): the Workbench downloads them while the run is PREPROCESSING. For a
WDL workflow a File input is the link itself, not a CWL File object.

Differences from plain WES: submission is a JSON body; runs are paged by
`pagination.next_page_url`; an access token the API refuses with 401 (expired or revoked
early) is dropped and fetched again once before the credential counts as rejected. States,
a failed run's `errors` as its message, outputs and result downloads are WES's.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, urljoin

import httpx

from imputehub.connectors.base import (
    CredentialCheck,
    ExternalRef,
    ExternalStatus,
    Health,
    HealthStatus,
    JobSpec,
    ResultFile,
    ResultSink,
    ServiceInfo,
)
from imputehub.connectors.wes.answers import json_object
from imputehub.connectors.wes.connector import (
    MAX_PAGES,
    PAGE_SIZE,
    TAG,
    WesConnector,
    ask_wes,
    workflow_params,
)
from imputehub.connectors.wes.outputs import same_origin
from imputehub.domain.errors import PermanentServiceError

REQUIRED = ("namespace", "token_url", "client_id")
AUTH_OPTIONS = ("scope", "resource", "audience")

T = TypeVar("T")

# True while a call may still drop a refused access token and try once more.
_MAY_RETRY: ContextVar[bool] = ContextVar("dnastack_may_retry", default=False)


class _TokenRefused(Exception):
    """The API refused the access token; a fresh one may be accepted."""


def _settings(service: ServiceInfo) -> Mapping[str, Any]:
    """The service's settings, refused plainly when one the connector needs is missing."""
    config = service.api_config
    missing = [name for name in REQUIRED if not config.get(name)]
    if missing:
        raise PermanentServiceError(
            f"the DNAstack service settings lack {', '.join(missing)}: an admin must set them"
        )
    return config


def _auth_config(service: ServiceInfo) -> dict[str, Any]:
    """The settings the WES token cache reads: always the OAuth2 client-credentials grant."""
    config = _settings(service)
    auth: dict[str, Any] = {
        "auth": "oauth2",
        "token_url": config["token_url"],
        "client_id": config["client_id"],
    }
    for name in AUTH_OPTIONS:
        if config.get(name):
            auth[name] = config[name]
    return auth


def _as_links(value: Any) -> Any:
    """CWL File objects as their bare locations: a WDL File input is just the URL."""
    if isinstance(value, list):
        return [_as_links(item) for item in value]
    if isinstance(value, dict):
        if value.get("class") == "File" and "location" in value:
            return value["location"]
        return {key: _as_links(item) for key, item in value.items()}
    return value


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class DnastackConnector(WesConnector):
    """WES with DNAstack's URLs, body, paging and auth; holds the token cache and the
    clients' pool (`DnastackConnector(clients=pool)`, as WesConnector)."""

    def base_url(self, service: ServiceInfo) -> str:
        namespace = quote(str(_settings(service)["namespace"]), safe="")
        return f"{service.base_url.rstrip('/')}/{namespace}/ga4gh/wes/v1"

    def auth_config(self, service: ServiceInfo) -> dict[str, Any]:
        return _auth_config(service)

    def _check(
        self,
        service: ServiceInfo,
        credential: str | None,
        response: httpx.Response,
        run: str | None = None,
    ) -> None:
        if response.status_code == 401 and _MAY_RETRY.get():
            self.tokens.forget(self.auth_config(service), credential)
            raise _TokenRefused
        super()._check(service, credential, response, run)

    async def _once_more(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call`; if the API refused a (cached) token, run it again with a fresh one.

        A 401 answer means nothing was done, so even a submission is safe to repeat.
        """
        reset = _MAY_RETRY.set(True)
        try:
            try:
                return await call()
            except _TokenRefused:
                _MAY_RETRY.set(False)
                return await call()
        finally:
            _MAY_RETRY.reset(reset)

    # ---- the Protocol, each call with one retry after a refused token --------------------

    async def check_health(self, service: ServiceInfo) -> Health:
        try:
            _settings(service)
        except PermanentServiceError as exc:
            return Health(status=HealthStatus.UNHEALTHY, message=exc.message)
        return await super().check_health(service)

    async def verify_credential(self, service: ServiceInfo, credential: str) -> CredentialCheck:
        """A token from the client credentials, then one run listed with it."""
        verdict = await self._once_more(
            lambda: super(DnastackConnector, self).verify_credential(service, credential)
        )
        if not verdict.valid:
            return verdict
        return CredentialCheck(
            valid=True, message="DNAstack Workbench accepted the client credentials"
        )

    async def find(
        self,
        service: ServiceInfo,
        idempotency_key: str,
        credential: str | None,
        *,
        submitted_after: datetime | None = None,
    ) -> ExternalRef | None:
        return await self._once_more(
            lambda: super(DnastackConnector, self).find(
                service, idempotency_key, credential, submitted_after=submitted_after
            )
        )

    async def submit(
        self,
        service: ServiceInfo,
        job: JobSpec,
        credential: str | None,
        idempotency_key: str,
    ) -> ExternalRef:
        # Refused before asking for a token: settings and inputs are the hub's own problem.
        _body(service, job, idempotency_key)
        return await self._once_more(
            lambda: super(DnastackConnector, self).submit(service, job, credential, idempotency_key)
        )

    async def poll(
        self, service: ServiceInfo, ref: ExternalRef, credential: str | None
    ) -> ExternalStatus:
        return await self._once_more(
            lambda: super(DnastackConnector, self).poll(service, ref, credential)
        )

    async def cancel(self, service: ServiceInfo, ref: ExternalRef, credential: str | None) -> None:
        await self._once_more(
            lambda: super(DnastackConnector, self).cancel(service, ref, credential)
        )

    async def fetch_results(
        self,
        service: ServiceInfo,
        ref: ExternalRef,
        credential: str | None,
        sink: ResultSink,
    ) -> list[ResultFile]:
        return await self._once_more(
            lambda: super(DnastackConnector, self).fetch_results(service, ref, credential, sink)
        )

    # ---- the hooks WesConnector leaves to a dialect -------------------------------------

    async def _run_pages(
        self,
        client: httpx.AsyncClient,
        service: ServiceInfo,
        credential: str | None,
        headers: dict[str, str],
    ) -> AsyncIterator[list[Any]]:
        """The runs, newest first, a page at a time, following `pagination.next_page_url`."""
        base = self.base_url(service)
        url = f"{base}/runs"
        params: dict[str, int] | None = {"page_size": PAGE_SIZE}
        seen = {url}
        for _ in range(MAX_PAGES):
            response = await ask_wes(client, "GET", url, params=params, headers=headers)
            self._check(service, credential, response)
            body = json_object(response)
            runs = body.get("runs")
            yield runs if isinstance(runs, list) else []
            pagination = body.get("pagination")
            following = pagination.get("next_page_url") if isinstance(pagination, Mapping) else None
            if not following:
                return
            url = urljoin(str(response.url), str(following))
            # The requests carry the bearer token: never follow a link to another host.
            if url in seen or not same_origin(url, base):
                return
            seen.add(url)
            params = None  # the link carries its own query

    def _submission(
        self, service: ServiceInfo, job: JobSpec, idempotency_key: str
    ) -> tuple[AsyncIterator[bytes], dict[str, str]]:
        """The POST /runs body (one JSON object) and its headers."""
        data = _body(service, job, idempotency_key)
        return _one_chunk(data), {
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
        }


def _body(service: ServiceInfo, job: JobSpec, idempotency_key: str) -> bytes:
    """The run request, the inputs as signed hub links; refused plainly when incomplete."""
    config = _settings(service)
    workflow_url = config.get("workflow_url")
    if not workflow_url:
        raise PermanentServiceError(
            "the DNAstack service settings name no workflow_url: DNAstack runs only "
            "workflows the Workbench already has, so an admin must name one"
        )
    workflow_type = str(config.get("workflow_type") or "WDL")
    params = workflow_params(config, job, by_url=True)
    if workflow_type.upper() != "CWL":
        params = _as_links(params)
    body: dict[str, Any] = {
        "workflow_url": str(workflow_url),
        "workflow_type": workflow_type,
        "workflow_type_version": str(config.get("workflow_type_version") or "1.0"),
        "workflow_params": params,
        "tags": {TAG: idempotency_key},
    }
    for name in ("workflow_name", "engine_id"):
        if config.get(name):
            body[name] = str(config[name])
    if config.get("workflow_engine_parameters"):
        body["workflow_engine_parameters"] = config["workflow_engine_parameters"]
    return json.dumps(body).encode()

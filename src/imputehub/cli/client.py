"""The HTTP client of the command line: talks to a hub's REST API with a bearer token.

Problem+json answers become `HubError` ("error: <detail>"), network failures a plain
"cannot reach the hub" line; no httpx exception reaches the user.

httpx and the settings are imported when a client is made, not with this module: every
command module imports it, and `imputehub --help` should not pay for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from imputehub import __version__
from imputehub.cli.errors import CliError
from imputehub.cli.token_store import StoredLogin, load_login

if TYPE_CHECKING:
    import httpx

    from imputehub.config import Settings

API_PREFIX = "/api/v1"


class HubUnreachable(CliError):
    pass


class HubError(CliError):
    """The hub refused a request; `detail` is its own explanation, `problem` the whole
    problem+json document when it sent one (extension members such as `targets`)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.problem = problem or {}


def problem_error(response: httpx.Response) -> HubError:
    """Turn an error response (RFC 9457 problem+json, or anything else) into a HubError."""
    code: str | None = None
    detail: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw_code, raw_detail = body.get("code"), body.get("detail")
        code = raw_code if isinstance(raw_code, str) else None
        detail = raw_detail if isinstance(raw_detail, str) else None
    if detail is None:
        detail = f"the hub answered {response.status_code} {response.reason_phrase}".rstrip()
    if response.status_code == 401 and code != "invalid_credentials":
        detail = _login_hint(response, detail)
    problem = body if isinstance(body, dict) else None
    return HubError(detail, status=response.status_code, code=code, problem=problem)


def _login_hint(response: httpx.Response, detail: str) -> str:
    """A refusal for want of a (valid) token, told as what to do: the hub's own words speak
    of HTTP headers, which a command-line user never sends by hand."""
    request = response.request
    hub, api, _path = str(request.url).partition(API_PREFIX + "/")
    if not api:  # not the hub's API (a storage server's link): its words stand
        return detail
    if "authorization" not in request.headers:
        return f"not logged in to {hub}: run `imputehub login --url {hub}` (or set IMPUTEHUB_TOKEN)"
    return f"the hub refused the token ({detail}); run `imputehub login --url {hub}` for a new one"


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"the hub URL must look like https://hub.example.org, not {url!r}")
    return url


def segment(value: str) -> str:
    """A user-given id as one URL path segment (`a/../b` must not walk the API)."""
    return quote(value, safe="")


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


class HubClient:
    """A synchronous client for one hub. Use as a context manager."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        import httpx

        self.url = normalise_url(url)
        headers = {"User-Agent": f"imputehub-cli/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url + API_PREFIX, headers=headers, timeout=timeout)

    def __enter__(self) -> HubClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Send a request to `/api/v1{path}`; the decoded JSON body, or None when empty."""
        if params is not None:
            params = {k: v for k, v in params.items() if v is not None}
        with self._translate_network_errors():
            response = self._http.request(method, path, json=json, params=params)
        if response.is_error:
            raise problem_error(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise HubError(
                f"the hub at {self.url} answered with something that is not JSON",
                status=response.status_code,
            ) from exc

    def get(self, path: str, *, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, *, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    @contextmanager
    def stream(self, url: str) -> Iterator[httpx.Response]:
        """GET a download URL (relative to the hub, or absolute) as a streamed response.

        The bearer token goes only to the hub itself, never to another host (for
        example a storage server's pre-signed URL).
        """
        import httpx

        target = urljoin(self.url + "/", url)
        with self._translate_network_errors():
            if same_origin(target, self.url):
                ctx = self._http.stream("GET", target)
            else:
                ctx = httpx.stream("GET", target, timeout=self._http.timeout)
            with ctx as response:
                if response.is_error:
                    response.read()
                    raise problem_error(response)
                yield response

    @contextmanager
    def _translate_network_errors(self) -> Iterator[None]:
        import httpx

        try:
            yield
        except httpx.TimeoutException as exc:
            raise HubUnreachable(f"the hub at {self.url} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise HubUnreachable(f"cannot reach the hub at {self.url}") from exc


def resolve_hub(
    settings: Settings, url_option: str | None, stored: StoredLogin | None
) -> tuple[str, str | None]:
    """Which hub to talk to and with which token.

    The URL comes from --url, else IMPUTEHUB_URL, else the stored login, else the default.
    The token from IMPUTEHUB_TOKEN, else the stored login, but only for the hub it was
    issued by: a token is never sent to another hub.
    """
    if url_option:
        url = url_option
    elif "url" in settings.model_fields_set:
        url = settings.url
    elif stored is not None:
        url = stored.url
    else:
        url = settings.url
    url = normalise_url(url)
    if settings.token is not None:
        return url, settings.token.get_secret_value()
    if stored is not None and normalise_url(stored.url) == url:
        return url, stored.token
    return url, None


def connect(url_option: str | None = None) -> HubClient:
    """A client for the hub the user means, authenticated when we hold a token for it."""
    from imputehub.cli.settings import load_settings

    settings = load_settings()
    url, token = resolve_hub(settings, url_option, load_login(settings.client_config_dir))
    return HubClient(url, token)

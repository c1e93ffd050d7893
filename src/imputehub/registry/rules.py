"""Pure rules for registry values: slugs, base URLs, api_config, builds, populations.

No I/O: each function takes a value and returns it cleaned, or raises InvalidInput naming
the field. The use cases in services.py and panels.py apply them before storing anything.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from imputehub.connectors.base import API_TYPES
from imputehub.domain.errors import InvalidInput
from imputehub.domain.jobs import Build
from imputehub.domain.slots import LIMIT_KEY

MAX_SLUG_LENGTH = 100
MAX_URL_LENGTH = 2000
MAX_CONFIG_BYTES = 16 * 1024
MAX_CONFIG_DEPTH = 8
MAX_POPULATIONS = 50
MAX_POPULATION_LENGTH = 32  # jobs store the chosen population in 32 characters
MAX_CREDENTIAL_LENGTH = 8192
BUILDS = tuple(b.value for b in Build)

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Slugs share the lookup namespace with ids: a slug shaped like a UUID would be ambiguous.
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HOST_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
POPULATION_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_MULTILINE_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Words that mark an api_config key as holding a secret...
_SECRET_WORDS = frozenset(
    {
        "token",
        "tokens",
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "apikey",
        "apitoken",
        "accesstoken",
        "bearer",
        "cookie",
        "authorization",
        "privatekey",
    }
)
# ...or pairs of words that do ("api_key", "privateKey", "x-access-key").
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("auth", "key")}
)
# A key ending in one of these names where a secret is used, not the secret ("token_url").
_SAFE_LAST_WORDS = frozenset({"url", "uri", "endpoint", "path", "type", "header", "name"})

# What a service offers jobs is kept in its api_config, where admins see it and may set it,
# and where panel sync refreshes it from what the service itself lists (Michigan: its app's
# `phasing` and `r2Filter` params): `"phasing": ["eagle", "no_phasing"]`,
# `"r2_filter": [0, 0.001, 0.1, 0.2, 0.3]`. A key left out means: not known, the service
# decides. A synced field would need a migration and an admin form of its own; api_config
# already travels to the connectors and the admin API. `max_jobs_per_user` is the per-user
# job limit of Michigan servers (default 2), which the connector checks before uploading.
PHASING_CHOICES = "phasing"
R2_FILTER_CHOICES = "r2_filter"
JOBS_PER_USER = LIMIT_KEY  # domain/slots.py: the hub's slots per account follow it
# The bytes of results one job may store (worker/sink.py); the hub's setting otherwise.
RESULT_BYTES = "max_result_bytes"
MAX_CHOICE_LENGTH = 32


def check_text(value: str, *, field: str, max_length: int, required: bool = True) -> str:
    """A one-line text: trimmed, no control characters, within the length."""
    cleaned = value.strip()
    if required and not cleaned:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(cleaned) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    if _CONTROL_RE.search(cleaned):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    return cleaned


def check_long_text(value: str, *, field: str, max_length: int) -> str:
    """A free text such as a description: line breaks and tabs allowed."""
    cleaned = value.strip()
    if len(cleaned) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    if _MULTILINE_CONTROL_RE.search(cleaned):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    return cleaned


def slugify(text: str) -> str:
    """Lowercase a-z0-9 words joined by '-'; '' when the text has no letters or digits."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-")


# Words the console's addresses use beside slugs (/console/services/new, …/panels/import).
RESERVED_SLUGS = frozenset({"new", "import", "edit"})


def check_slug(slug: str) -> str:
    if not SLUG_RE.match(slug) or len(slug) > MAX_SLUG_LENGTH:
        raise InvalidInput(
            f"slug must be 1-{MAX_SLUG_LENGTH} characters of lowercase a-z, 0-9 and '-' "
            "(no leading, trailing or doubled '-')",
            field="slug",
        )
    if UUID_RE.match(slug):
        raise InvalidInput("slug must not look like an id (a UUID)", field="slug")
    if slug in RESERVED_SLUGS:
        raise InvalidInput(
            f"slug '{slug}' names a page of the console; choose another", field="slug"
        )
    return slug


def derive_slug(*parts: str) -> str:
    """The slug made from `parts` (e.g. a name), checked like a given one."""
    slug = slugify(" ".join(parts))
    if not slug:
        raise InvalidInput(
            "cannot make a slug from the name (it has no letters or digits); send a slug",
            field="slug",
        )
    return check_slug(slug)


def check_api_type(api_type: str) -> str:
    if api_type not in API_TYPES:
        raise InvalidInput(f"api_type must be one of {', '.join(API_TYPES)}", field="api_type")
    return api_type


def check_base_url(url: str) -> str:
    """An http(s) URL with a host and nothing that belongs elsewhere; trailing '/' dropped."""
    field = "base_url"
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"base_url must be at most {MAX_URL_LENGTH} characters", field=field)
    if not url or any(c.isspace() for c in url) or _CONTROL_RE.search(url):
        raise InvalidInput("base_url must be a URL without spaces", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput("base_url is not a valid URL", field=field) from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("base_url must start with http:// or https://", field=field)
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL would be stored and shown in clear.
        raise InvalidInput(
            "base_url must not contain a user name or password; use 'credential'", field=field
        )
    if not parts.hostname or not _is_host(parts.hostname):
        raise InvalidInput("base_url must name a valid host", field=field)
    if port == 0:
        raise InvalidInput("base_url has an invalid port", field=field)
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise InvalidInput("base_url must not have a query or a fragment", field=field)
    return url.rstrip("/")


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    return all(HOST_LABEL_RE.match(label) for label in name.split("."))


def check_builds(builds: Iterable[str]) -> list[str]:
    """A subset of the known builds, without repeats, in a stable order."""
    chosen = set(builds)
    unknown = chosen - set(BUILDS)
    if unknown:
        raise InvalidInput(
            f"supported_builds may only contain {', '.join(BUILDS)}", field="supported_builds"
        )
    return [b for b in BUILDS if b in chosen]


def check_build(build: str) -> str:
    if build not in BUILDS:
        raise InvalidInput(f"build must be one of {', '.join(BUILDS)}", field="build")
    return build


def check_populations(populations: Iterable[str]) -> list[str]:
    """Short lowercase labels (given labels are lowercased), without repeats, in given order."""
    labels: list[str] = []
    for raw in populations:
        label = raw.strip().lower()
        if len(label) > MAX_POPULATION_LENGTH or not POPULATION_RE.match(label):
            raise InvalidInput(
                f"each population must be 1-{MAX_POPULATION_LENGTH} characters of a-z, 0-9, "
                "'_' and '-', starting with a letter or digit",
                field="populations",
            )
        if label not in labels:
            labels.append(label)
    if len(labels) > MAX_POPULATIONS:
        raise InvalidInput(
            f"a panel lists at most {MAX_POPULATIONS} populations", field="populations"
        )
    return labels


def check_credential(credential: str) -> str:
    """Kept exactly as given (it is someone else's secret); only emptiness and size checked."""
    if not credential.strip():
        raise InvalidInput(
            "credential must not be empty; send null to clear it", field="credential"
        )
    if len(credential) > MAX_CREDENTIAL_LENGTH:
        raise InvalidInput(
            f"credential must be at most {MAX_CREDENTIAL_LENGTH} characters", field="credential"
        )
    return credential


def key_words(key: str) -> list[str]:
    """'clientSecret' -> ['client', 'secret']; 'X-API-Key' -> ['x', 'api', 'key']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def looks_secret(key: str) -> bool:
    words = key_words(key)
    if not words or words[-1] in _SAFE_LAST_WORDS:
        return False
    if "".join(words) in _SECRET_WORDS or any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def check_api_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A small JSON object of non-secret settings; keys that look like secrets are refused."""
    field = "api_config"
    # Walk without recursion so a deeply nested document cannot exhaust the stack.
    stack: list[tuple[Any, int]] = [(config, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise InvalidInput(
                f"api_config must not nest deeper than {MAX_CONFIG_DEPTH} levels", field=field
            )
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise InvalidInput("api_config keys must be strings", field=field)
                if looks_secret(key):
                    raise InvalidInput(
                        f"api_config key '{key[:100]}' looks like a secret; api_config is "
                        "stored and shown in clear, so send secrets as 'credential', which "
                        "is stored encrypted and never shown",
                        field=field,
                    )
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif not (node is None or isinstance(node, str | int | float | bool)):
            raise InvalidInput("api_config must hold JSON values only", field=field)
    try:
        encoded = json.dumps(config, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        raise InvalidInput("api_config must hold JSON values only", field=field) from exc
    if len(encoded.encode()) > MAX_CONFIG_BYTES:
        raise InvalidInput(
            f"api_config is too large: at most {MAX_CONFIG_BYTES} bytes of JSON", field=field
        )
    loaded: dict[str, Any] = json.loads(encoded)
    _check_offered(loaded)
    return loaded


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_offered(config: Mapping[str, Any]) -> None:
    """The api_config keys the hub itself reads must have their documented shape."""
    field = "api_config"
    phasing = config.get(PHASING_CHOICES)
    if phasing is not None and not (
        isinstance(phasing, list)
        and phasing
        and all(isinstance(p, str) and 0 < len(p) <= MAX_CHOICE_LENGTH for p in phasing)
    ):
        raise InvalidInput(
            f"api_config '{PHASING_CHOICES}' must list the phasing methods the service offers, "
            'e.g. ["eagle", "beagle", "no_phasing"]',
            field=field,
        )
    r2_filter = config.get(R2_FILTER_CHOICES)
    if r2_filter is not None and not (
        isinstance(r2_filter, list)
        and r2_filter
        and all(_is_number(v) and 0 <= v <= 1 for v in r2_filter)
    ):
        raise InvalidInput(
            f"api_config '{R2_FILTER_CHOICES}' must list the r2 filters the service offers, "
            "numbers from 0 to 1, e.g. [0, 0.001, 0.1, 0.2, 0.3]",
            field=field,
        )
    for key in (JOBS_PER_USER, RESULT_BYTES):
        limit = config.get(key)
        if limit is not None and not (isinstance(limit, int) and _is_number(limit) and limit > 0):
            raise InvalidInput(f"api_config '{key}' must be a positive whole number", field=field)


def offered_phasing(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The phasing methods a service offers; () when not known."""
    values = config.get(PHASING_CHOICES)
    return tuple(str(v) for v in values) if isinstance(values, list) else ()


def offered_r2_filters(config: Mapping[str, Any]) -> tuple[float, ...]:
    """The r2 filters a service offers; () when not known."""
    values = config.get(R2_FILTER_CHOICES)
    if not isinstance(values, list):
        return ()
    return tuple(float(v) for v in values if _is_number(v))

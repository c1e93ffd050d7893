"""The service form of the console: the fields each kind of service shows, and reading them.

A kind's settings live in the service's `api_config` under the keys its connector reads
(connectors/michigan, wes, dnastack; README "Services"). The form shows the common ones;
keys it does not show (the phasing methods a sync learnt, `params` maps…) are kept as they
are on an edit. Values are only shaped here (text, numbers, JSON); the registry's rules
(registry/services.py, rules.py) judge them, as for the REST API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from imputehub.domain.errors import InvalidInput
from imputehub.domain.slots import DEFAULT_LIMITS, LIMIT_KEY
from imputehub.registry import rules

TEXT = "text"
URL = "url"
CHECKBOX = "checkbox"
SELECT = "select"
JSON_OBJECT = "json_object"
JSON_LIST = "json_list"
MAX_FIELD_CHARS = 16 * 1024


@dataclass(frozen=True, kw_only=True)
class ConfigField:
    """One `api_config` key as a form field (named `cfg_<key>`)."""

    key: str
    label: str
    kind: str = TEXT
    hint: str = ""
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()  # (value, label); "" = not set

    @property
    def id(self) -> str:
        return f"cfg_{self.key}"


@dataclass(frozen=True, kw_only=True)
class Kind:
    api_type: str
    label: str
    summary: str
    base_url_hint: str
    base_url_default: str = ""
    fields: tuple[ConfigField, ...] = ()


_PRIVATE = ConfigField(
    key="allow_private_urls",
    label="Allow private addresses",
    kind=CHECKBOX,
    hint="Only for a service on your own private network: lets it hand back URLs on "
    "private addresses (result files, logs).",
)
_OAUTH = (
    ConfigField(key="scope", label="OAuth2 scope", hint="Optional."),
    ConfigField(key="audience", label="OAuth2 audience", hint="Optional."),
    ConfigField(key="resource", label="OAuth2 resource", hint="Optional."),
)
_ENGINE_PARAMS = ConfigField(
    key="workflow_engine_parameters",
    label="Workflow engine parameters (JSON object)",
    kind=JSON_OBJECT,
    hint='Optional, e.g. {"--outdir": "out"}.',
)
_PANELS = ConfigField(
    key="panels",
    label="Panels (JSON list)",
    kind=JSON_LIST,
    hint='The panels the service offers, e.g. [{"panel_id": "1kg", "display_name": '
    '"1000 Genomes", "build": "hg38", "populations": ["afr", "eur"]}]. "Sync panels" '
    "then brings them into the hub.",
)
_PARAMS = ConfigField(
    key="params",
    label="Workflow parameter names (JSON object)",
    kind=JSON_OBJECT,
    hint='Optional: which workflow parameter gets which job field, e.g. {"inputs": "vcfs"}.',
)
_EXTRA_PARAMS = ConfigField(
    key="extra_params",
    label="Extra workflow parameters (JSON object)",
    kind=JSON_OBJECT,
    hint="Optional: sent to every run as they are.",
)

KINDS: dict[str, Kind] = {
    "michigan": Kind(
        api_type="michigan",
        label="Michigan-type server",
        summary="Michigan, TOPMed, H3Africa/AfriGen-D: Cloudgene 3 servers (API v2).",
        base_url_hint="The server's address, e.g. https://imputationserver.sph.umich.edu.",
        fields=(
            ConfigField(
                key="app",
                label="App id",
                hint="Optional: the Cloudgene app to run; imputationserver2 when empty.",
            ),
            ConfigField(
                key="aes_encryption",
                label="AES-256 result zips",
                kind=CHECKBOX,
                hint="Ask for AES-256 encrypted result zips instead of ZipCrypto.",
            ),
            _PRIVATE,
        ),
    ),
    "ga4gh_wes": Kind(
        api_type="ga4gh_wes",
        label="GA4GH WES server",
        summary="A Workflow Execution Service 1.0/1.1 server (e.g. sapporo, toil).",
        base_url_hint="The WES root, e.g. https://wes.example.org/ga4gh/wes/v1.",
        fields=(
            ConfigField(
                key="workflow_url",
                label="Workflow URL",
                hint="Optional: without it the hub attaches its own impute.cwl.",
            ),
            ConfigField(key="workflow_type", label="Workflow type", hint="CWL when empty."),
            ConfigField(
                key="workflow_type_version", label="Workflow type version", hint="v1.2 when empty."
            ),
            ConfigField(
                key="workflow_engine", label="Workflow engine", hint="Optional, e.g. cwltool."
            ),
            ConfigField(
                key="workflow_engine_version", label="Workflow engine version", hint="Optional."
            ),
            _ENGINE_PARAMS,
            ConfigField(
                key="auth",
                label="Authentication",
                kind=SELECT,
                choices=(
                    ("", "Automatic (OAuth2 with a token URL, else bearer with a credential)"),
                    ("none", "None"),
                    ("bearer", "Bearer: the credential is a static token"),
                    ("oauth2", "OAuth2 client credentials: the credential is the secret"),
                ),
            ),
            ConfigField(key="token_url", label="OAuth2 token URL", kind=URL, hint="For OAuth2."),
            ConfigField(key="client_id", label="OAuth2 client id", hint="For OAuth2."),
            *_OAUTH,
            ConfigField(
                key="inputs_as",
                label="Input files travel as",
                kind=SELECT,
                choices=(
                    ("", "Attachments (the default)"),
                    ("attachment", "Attachments"),
                    ("url", "Signed links to the hub (needs IMPUTEHUB_PUBLIC_URL)"),
                ),
            ),
            ConfigField(
                key="drs_scheme",
                label="DRS scheme",
                kind=SELECT,
                choices=(("", "https (the default)"), ("https", "https"), ("http", "http")),
            ),
            _PANELS,
            _PARAMS,
            _EXTRA_PARAMS,
            _PRIVATE,
        ),
    ),
    "dnastack": Kind(
        api_type="dnastack",
        label="DNAstack Workbench",
        summary="DNAstack Workbench's eWES; the credential is the OAuth2 client secret.",
        base_url_hint="The eWES endpoint before the namespace, e.g. "
        "https://workspaces.dnastack.com/api/ewes.",
        fields=(
            ConfigField(key="namespace", label="Namespace", required=True),
            ConfigField(key="token_url", label="OAuth2 token URL", kind=URL, required=True),
            ConfigField(key="client_id", label="OAuth2 client id", required=True),
            *_OAUTH,
            ConfigField(
                key="workflow_url",
                label="Workflow URL",
                required=True,
                hint="A workflow the Workbench already has.",
            ),
            ConfigField(key="workflow_type", label="Workflow type", hint="WDL when empty."),
            ConfigField(
                key="workflow_type_version", label="Workflow type version", hint="1.0 when empty."
            ),
            ConfigField(key="workflow_name", label="Workflow name", hint="Optional."),
            ConfigField(key="engine_id", label="Engine id", hint="Optional."),
            _ENGINE_PARAMS,
            _PANELS,
            _PARAMS,
            _EXTRA_PARAMS,
            _PRIVATE,
        ),
    ),
    "local": Kind(
        api_type="local",
        label="Local engine",
        summary="The hub's own machines run Beagle; panels are imported with the CLI.",
        base_url_hint="Not used to reach anything; http://localhost will do.",
        base_url_default="http://localhost",
    ),
}

# Form field ids of the common fields, by the registry's field names (errors name those).
COMMON_FIELDS = {
    "name": "name",
    "slug": "slug",
    "base_url": "base_url",
    "description": "description",
    "location": "location",
    "supported_builds": "supported_builds",
    "max_upload_size": "max_upload_size",
    "job_time_limit_seconds": "job_time_limit",
    "credential": "credential",
    "api_config": "api_config",
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def kind_of(api_type: str | None) -> Kind | None:
    return KINDS.get(api_type or "")


def shown_keys(kind: Kind) -> set[str]:
    """The api_config keys the form shows (so an empty field removes them)."""
    return {f.key for f in kind.fields} | {LIMIT_KEY}


def default_slot_limit(kind: Kind) -> int | None:
    return DEFAULT_LIMITS.get(kind.api_type)


@dataclass
class Parsed:
    """A posted service form: values for the registry, or why not."""

    values: dict[str, Any] = field(default_factory=dict)  # common fields, registry names
    config: dict[str, Any] = field(default_factory=dict)  # shown keys that were filled in
    errors: dict[str, str] = field(default_factory=dict)  # form field id -> message
    credential: str | None = None


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def parse_size(raw: str) -> int | None:
    """Bytes from '5368709120', '500M', '5 GiB', '1.5G'; None when unreadable."""
    match = _SIZE_RE.match(raw)
    if not match:
        return None
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])


def _config_value(spec: ConfigField, raw: str) -> tuple[Any, str | None]:
    """(the value for api_config or None when empty, an error message or None)."""
    if spec.kind == CHECKBOX:
        return (True if raw else None), None
    text = raw.strip()
    if not text:
        return None, (f"{spec.label} is required for this kind." if spec.required else None)
    if len(text) > MAX_FIELD_CHARS:
        return None, f"{spec.label} must be at most {MAX_FIELD_CHARS} characters."
    if spec.kind in (JSON_OBJECT, JSON_LIST):
        try:
            value = json.loads(text)
        except ValueError:
            return None, f"{spec.label} is not valid JSON."
        wanted = dict if spec.kind == JSON_OBJECT else list
        if not isinstance(value, wanted):
            what = "an object ({…})" if wanted is dict else "a list ([…])"
            return None, f"{spec.label} must be {what}."
        return value, None
    if spec.kind == SELECT and text not in {v for v, _ in spec.choices}:
        return None, f"Choose one of the offered values for {spec.label}."
    if spec.kind == URL:
        try:
            rules.check_base_url(text)
        except InvalidInput:  # its wording names base_url: say it for this field
            return None, f"{spec.label} must be an http:// or https:// URL with a host."
    return text, None


def parse(kind: Kind, form: FormData, *, with_credential: bool) -> Parsed:
    """Read the posted form of `kind` (common fields and its api_config fields)."""
    parsed = Parsed()
    values = parsed.values
    errors = parsed.errors
    for name in ("name", "base_url", "description", "location"):
        values[name] = _text(form, name)
    # Said at once with the other mistakes; the registry checks both again.
    if not values["name"].strip():
        errors["name"] = "Name must not be empty."
    if not values["base_url"].strip():
        errors["base_url"] = "Base URL must not be empty."
    slug = _text(form, "slug").strip()
    values["slug"] = slug or None
    values["supported_builds"] = [b for b in form.getlist("supported_builds") if isinstance(b, str)]
    size = _text(form, "max_upload_size").strip()
    values["max_upload_size"] = None
    if size:
        values["max_upload_size"] = parse_size(size)
        if values["max_upload_size"] is None:
            errors["max_upload_size"] = "Give a size such as 5368709120, 500M or 5G."
    hours = _text(form, "job_time_limit").strip()
    values["job_time_limit_seconds"] = None
    if hours:
        try:
            values["job_time_limit_seconds"] = float(hours) * 3600
        except ValueError:
            errors["job_time_limit"] = "Give the time limit in hours, e.g. 24 or 0.5."
    limit = _text(form, "slot_limit").strip()
    if limit:
        if limit.isdigit() and int(limit) > 0:
            parsed.config[LIMIT_KEY] = int(limit)
        else:
            errors["slot_limit"] = "The slot limit must be a whole number of at least 1."
    for spec in kind.fields:
        value, error = _config_value(spec, _text(form, spec.id))
        if error:
            errors[spec.id] = error
        elif value is not None:
            parsed.config[spec.key] = value
    if with_credential:
        secret = _text(form, "credential")
        parsed.credential = secret if secret.strip() else None
    return parsed


def merged_config(kind: Kind, current: Mapping[str, Any], parsed: Parsed) -> dict[str, Any]:
    """`current` with the shown keys as the form has them; keys it does not show stay."""
    kept = {k: v for k, v in current.items() if k not in shown_keys(kind)}
    return {**kept, **parsed.config}


def shown_value(spec: ConfigField, config: Mapping[str, Any]) -> str:
    """A stored api_config value as its form field shows it."""
    value = config.get(spec.key)
    if value is None:
        return ""
    if spec.kind == CHECKBOX:
        return "on" if value is True else ""
    if spec.kind in (JSON_OBJECT, JSON_LIST) or not isinstance(value, str):
        return json.dumps(value, indent=2)
    return value


def size_text(size: int | None) -> str:
    if size is None:
        return ""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def hours_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    hours = seconds / 3600
    return f"{hours:g}"


def form_values(kind: Kind, service: Any) -> dict[str, str]:
    """The form's field values for an existing service (edit)."""
    config = dict(service.api_config or {})
    given: dict[str, str] = {
        "name": service.name,
        "slug": service.slug,
        "base_url": service.base_url,
        "description": service.description or "",
        "location": service.location or "",
        "max_upload_size": size_text(service.max_upload_size),
        "job_time_limit": hours_text(service.job_time_limit_seconds),
        "slot_limit": str(config[LIMIT_KEY]) if LIMIT_KEY in config else "",
    }
    for spec in kind.fields:
        given[spec.id] = shown_value(spec, config)
    return given


def posted_values(kind: Kind, form: FormData) -> dict[str, str]:
    """What was typed, to show the form again after a mistake (never the credential)."""
    names = [
        "name",
        "slug",
        "base_url",
        "description",
        "location",
        "max_upload_size",
        "job_time_limit",
        "slot_limit",
    ]
    names += [spec.id for spec in kind.fields]
    return {name: _text(form, name) for name in names}

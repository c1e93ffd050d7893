"""The registry's pure rules, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from imputehub.domain.errors import InvalidInput
from imputehub.registry import rules


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Michigan Imputation Server", "michigan-imputation-server"),
        ("  TOPMed   (r3)  ", "topmed-r3"),
        ("H3Africa / AfriGen-D", "h3africa-afrigen-d"),
        ("Café Genève", "cafe-geneve"),
        ("1000G Phase 3 v5", "1000g-phase-3-v5"),
        ("--already-a-slug--", "already-a-slug"),
        ("!!!", ""),
        ("人类", ""),
        ("a" * 150, "a" * 100),
        ("a" * 99 + " b", "a" * 99),  # truncation never leaves a trailing '-'
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert rules.slugify(text) == slug


@pytest.mark.parametrize("slug", ["a", "michigan", "topmed-r3", "x1-2-3", "a" * 100])
def test_check_slug_accepts(slug: str) -> None:
    assert rules.check_slug(slug) == slug


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "Upper",
        "under_score",
        "-lead",
        "trail-",
        "dou--ble",
        "spa ce",
        "a" * 101,
        "123e4567-e89b-12d3-a456-426614174000",  # would shadow lookups by id
    ],
)
def test_check_slug_rejects(slug: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        rules.check_slug(slug)
    assert caught.value.extra["field"] == "slug"


def test_derive_slug_needs_letters_or_digits() -> None:
    assert rules.derive_slug("michigan", "HRC r1.1") == "michigan-hrc-r1-1"
    with pytest.raises(InvalidInput, match="send a slug"):
        rules.derive_slug("???")


@pytest.mark.parametrize(
    ("url", "cleaned"),
    [
        ("https://imputationserver.sph.umich.edu", "https://imputationserver.sph.umich.edu"),
        ("https://imputation.biodatacatalyst.nhlbi.nih.gov/api/v2/", None),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:5000/ga4gh/wes/v1", "http://127.0.0.1:5000/ga4gh/wes/v1"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://wes_server.internal", "https://wes_server.internal"),
    ],
)
def test_check_base_url_accepts(url: str, cleaned: str | None) -> None:
    assert rules.check_base_url(url) == (cleaned or url.rstrip("/"))


@pytest.mark.parametrize(
    "url",
    [
        "",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://example.org",
        "gopher://example.org",
        "https://",
        "https:///path-only",
        "example.org",
        "//example.org",
        "https://user:pass@example.org",
        "https://token@example.org",
        "https://exa mple.org",
        "https://example.org/\nX-Injected: 1",
        "https://example.org:99999",
        "https://example.org:0",
        "https://example.org?x=1",
        "https://example.org/#frag",
        "https://bad..host",
        "https://-bad.example.org",
        "https://exa!mple.org",
        "https://" + "a" * 2000 + ".org",
    ],
)
def test_check_base_url_rejects(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        rules.check_base_url(url)
    assert caught.value.extra["field"] == "base_url"


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "access_token",
        "accessToken",
        "API_TOKEN",
        "password",
        "db-passwd",
        "secret",
        "client_secret",
        "clientSecret",
        "api_key",
        "apiKey",
        "APIKEY",
        "X-API-Key",
        "private_key",
        "credentials",
        "Authorization",
        "bearer",
        "session_cookie",
        "passphrase",
    ],
)
def test_secret_looking_keys(key: str) -> None:
    assert rules.looks_secret(key)


@pytest.mark.parametrize(
    "key",
    [
        "token_url",
        "tokenEndpoint",
        "token_type",
        "auth_header",
        "client_id",
        "workflow_url",
        "workflow_type",
        "queue",
        "key",
        "monkey",
        "tokenizer_mode",
        "",
    ],
)
def test_harmless_keys(key: str) -> None:
    assert not rules.looks_secret(key)


def test_api_config_refuses_secret_keys_at_any_depth_and_points_to_credential() -> None:
    with pytest.raises(InvalidInput, match="credential") as caught:
        rules.check_api_config({"auth": {"servers": [{"client_secret": "x"}]}})
    assert caught.value.extra["field"] == "api_config"
    assert "'client_secret'" in caught.value.message
    assert "x" not in caught.value.message.replace("client_secret", "")


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"blob": "x" * rules.MAX_CONFIG_BYTES}, "too large"),
        ({"n": float("nan")}, "JSON values"),
        ({"n": float("inf")}, "JSON values"),
        ({"bytes": b"raw"}, "JSON values"),
        ({1: "non-string key"}, "strings"),
        ({"phasing": "eagle"}, "'phasing' must list"),
        ({"phasing": []}, "'phasing' must list"),
        ({"phasing": ["eagle", 1]}, "'phasing' must list"),
        ({"r2_filter": [0, 1.5]}, "'r2_filter' must list"),
        ({"r2_filter": [True]}, "'r2_filter' must list"),
        ({"max_jobs_per_user": 0}, "'max_jobs_per_user' must be a positive whole number"),
        ({"max_jobs_per_user": 2.5}, "'max_jobs_per_user' must be a positive whole number"),
        ({"max_result_bytes": -1}, "'max_result_bytes' must be a positive whole number"),
        ({"max_result_bytes": "1 GiB"}, "'max_result_bytes' must be a positive whole number"),
        ({"max_result_bytes": True}, "'max_result_bytes' must be a positive whole number"),
    ],
)
def test_api_config_rejects(config: dict[Any, Any], reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        rules.check_api_config(config)


def test_api_config_depth_is_capped_without_recursion() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100_000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(InvalidInput, match="nest deeper"):
        rules.check_api_config(deep)


def test_api_config_keeps_ordinary_settings() -> None:
    config = {"workflow_url": "imputation.cwl", "params": {"chunks": [1, 2], "fast": True}}
    assert rules.check_api_config(config) == config


def test_api_config_says_what_a_service_offers_jobs() -> None:
    config = {
        "phasing": ["eagle", "no_phasing"],
        "r2_filter": [0, 0.3],
        "max_jobs_per_user": 3,
        "max_result_bytes": 10 * 1024**3,
    }

    assert rules.check_api_config(config) == config
    assert rules.offered_phasing(config) == ("eagle", "no_phasing")
    assert rules.offered_r2_filters(config) == (0.0, 0.3)
    assert rules.offered_phasing({}) == ()
    assert rules.offered_r2_filters({}) == ()


@pytest.mark.parametrize(
    ("builds", "cleaned"),
    [([], []), (["hg38"], ["hg38"]), (["hg38", "hg19", "hg38"], ["hg19", "hg38"])],
)
def test_check_builds(builds: list[str], cleaned: list[str]) -> None:
    assert rules.check_builds(builds) == cleaned


@pytest.mark.parametrize("builds", [["hg18"], ["GRCh38"], ["hg19", ""]])
def test_check_builds_rejects_unknown(builds: list[str]) -> None:
    with pytest.raises(InvalidInput):
        rules.check_builds(builds)


def test_check_populations_lowercases_and_drops_repeats() -> None:
    assert rules.check_populations(["AFR", "eur", "afr", " mixed "]) == ["afr", "eur", "mixed"]


@pytest.mark.parametrize(
    "populations",
    [[""], ["two words"], ["_lead"], ["x" * 33], ["é"], [f"p{i}" for i in range(51)]],
)
def test_check_populations_rejects(populations: list[str]) -> None:
    with pytest.raises(InvalidInput):
        rules.check_populations(populations)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("  s3cr3t with spaces  ", True), ("", False), ("   ", False), ("x" * 8193, False)],
)
def test_check_credential(value: str, ok: bool) -> None:
    if ok:
        assert rules.check_credential(value) == value  # kept exactly, spaces and all
    else:
        with pytest.raises(InvalidInput):
            rules.check_credential(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("Michigan", True), ("", False), ("a\x00b", False), ("line\nbreak", False)],
)
def test_check_text(value: str, ok: bool) -> None:
    if ok:
        assert rules.check_text(f"  {value} ", field="name", max_length=10) == value
    else:
        with pytest.raises(InvalidInput):
            rules.check_text(value, field="name", max_length=10)

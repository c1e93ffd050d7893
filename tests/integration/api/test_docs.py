"""The API documentation works without internet access: /docs loads every script,
stylesheet and icon from the hub itself, and anyone may read it."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

import imputehub

# What a browser fetches for each kind of asset, and the least a real one weighs.
EXPECTED = {
    ".js": (("text/javascript", "application/javascript"), 100_000),
    ".css": (("text/css",), 10_000),
    ".png": (("image/png",), 100),
}


class References(HTMLParser):
    """The URLs a browser loads when it renders the page: scripts, links, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


async def test_the_docs_page_loads_everything_from_the_hub(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")  # logged out: the API description is public

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    # Not a single absolute URL: no CDN, no web fonts, no validator badge.
    assert "http://" not in html
    assert "https://" not in html
    urls = references(html)
    assert {Path(urlsplit(url).path).suffix for url in urls} == {".js", ".css", ".png"}, urls
    scripts = b""
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), url
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        types, least = EXPECTED[Path(parts.path).suffix]
        assert asset.headers["content-type"].split(";")[0] in types, url
        assert len(asset.content) >= least, url
        if url.endswith(".js"):
            scripts += asset.content
        if url.endswith(".png"):
            assert asset.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"SwaggerUIBundle" in scripts


async def test_the_docs_page_reads_the_hubs_own_openapi_description(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/docs")).text
    found = re.search(r"url: '([^']+)'", html)
    assert found is not None, html
    assert found.group(1) == "/openapi.json"

    described = await client.get(found.group(1))
    assert described.status_code == 200
    assert described.json()["info"]["title"] == "imputehub"
    assert "/api/v1/auth/login" in described.json()["paths"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in described.json()["paths"])


async def test_there_is_no_redoc_page(client: httpx.AsyncClient) -> None:
    """ReDoc's bundle would fetch its logo from the Redocly CDN; /docs is the one page."""
    assert (await client.get("/redoc")).status_code == 404


async def test_behind_a_path_prefix_the_docs_load_from_under_it(app: FastAPI) -> None:
    """A reverse proxy serving the hub at /hub (uvicorn --root-path /hub)."""
    transport = httpx.ASGITransport(app=app, root_path="/hub")
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        html = (await client.get("/hub/docs")).text
        urls = references(html)
        assert urls
        assert all(url.startswith("/hub/docs/assets/") for url in urls), urls
        assert "url: '/hub/openapi.json'" in html
        for url in urls:
            assert (await client.get(url)).status_code == 200, url


async def test_an_unknown_asset_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/assets/nothing-here.js")
    assert response.status_code == 404


def test_no_source_file_names_a_cdn() -> None:
    """Everything the hub serves comes from the hub: nothing under src/ points at a CDN."""
    cdn = re.compile(rb"cdn\.jsdelivr\.net|unpkg\.com|cdnjs|fonts\.googleapis\.com", re.I)
    root = Path(imputehub.__file__).parent
    files = [path for path in root.rglob("*") if path.is_file()]
    assert len(files) > 50  # the real source tree
    offenders = [str(path) for path in files if cdn.search(path.read_bytes())]
    assert offenders == []

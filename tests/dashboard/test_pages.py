"""The dashboard's pages over HTTP (no browser): every page renders, carries no inline script
or style, escapes what the address puts into it, finds its static files under any prefix or
mount, and the scripts never build HTML from text. The browser tests: tests/dashboard/browser/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from celeriac.dashboard.app import DashboardConfig, create_app
from celeriac.dashboard.history import open_history
from celeriac.dashboard.pages import STATIC_DIR
from tests.dashboard.api_support import StubCollector, make_app

PAGES = ["/", "/workers", "/worker/celeriac@web1", "/tasks", "/task/6f1c-id", "/queues",
         "/broker", "/charts", "/monitor"]


class Page(HTMLParser):
    """What the tests read from a page: scripts, styles, links, attributes of <body>."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = False
        self.styles = 0
        self.style_attrs = 0
        self.handler_attrs: list[str] = []
        self.links: list[str] = []
        self.body: dict[str, str | None] = {}
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.handler_attrs += [name for name in found if name.startswith("on")]
        self.style_attrs += "style" in found
        if tag == "script":
            self.scripts.append(found)
            self._in_script = True
        elif tag == "style":
            self.styles += 1
        elif tag in ("link", "a") and found.get("href"):
            self.links.append(str(found["href"]))
        elif tag == "body":
            self.body = found

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def _client(config: DashboardConfig, outer: str | None = None) -> Iterator[TestClient]:
    app = make_app()
    history = open_history("memory://")
    asgi = create_app(app, config, history=history,
                      collector=StubCollector(history))  # type: ignore[arg-type]
    served = Starlette(routes=[Mount(outer, app=asgi)]) if outer else asgi
    with TestClient(served) as client:
        yield client
    history.close()
    app.close()


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.delenv("FLOWER_UNAUTHENTICATED_API", raising=False)
    yield from _client(DashboardConfig())


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_without_inline_script_or_style(client: TestClient, path: str
                                                           ) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page = Page(response.text)
    assert not page.inline_script and page.styles == 0 and page.style_attrs == 0
    assert page.handler_attrs == []
    assert [s.get("type") for s in page.scripts] == ["module"]
    assert page.body["data-base"] == ""
    for link in page.links:  # the stylesheet, the icon, the navigation
        assert client.get(link).status_code == 200, link
    script = client.get(str(page.scripts[0]["src"]))
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]


def test_an_unknown_page_is_404(client: TestClient) -> None:
    assert client.get("/nope").status_code == 404
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../pages.py").status_code == 404


@pytest.mark.parametrize("subject", [
    '<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "a'b&c",
])
def test_the_address_is_escaped_into_the_page(client: TestClient, subject: str) -> None:
    for kind in ("task", "worker"):
        response = client.get(f"/{kind}/{quote(subject, safe='')}")
        assert response.status_code == 200
        page = Page(response.text)
        assert page.body["data-subject"] == subject  # the parser unescapes: it round-trips
        assert subject not in response.text
        assert page.handler_attrs == [] and len(page.scripts) == 1


def test_pages_render_without_auth_and_their_session_opens_the_api(client: TestClient) -> None:
    fresh = TestClient(client.app)
    assert fresh.get("/api/tasks").status_code == 401
    page = fresh.get("/tasks")
    assert page.status_code == 200
    assert "celeriac_session" in page.cookies and "celeriac_csrf" in page.cookies
    assert fresh.get("/api/tasks").status_code == 200


def test_with_basic_auth_pages_need_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    for client in _client(DashboardConfig(basic_auth=[("ann", "s3cret")])):
        assert client.get("/tasks").status_code == 401
        assert client.get("/tasks", auth=("ann", "s3cret")).status_code == 200
        assert client.get("/static/common.js").status_code == 401


@pytest.mark.parametrize("prefix, outer, base", [
    ("/flower", None, "/flower"),
    ("", "/ops", "/ops"),
    ("/flower", "/ops", "/ops/flower"),
])
def test_the_base_path_follows_url_prefix_and_mounts(prefix: str, outer: str | None,
                                                     base: str) -> None:
    for client in _client(DashboardConfig(url_prefix=prefix), outer):
        response = client.get(f"{base}/tasks")
        assert response.status_code == 200
        page = Page(response.text)
        assert page.body["data-base"] == base
        assert all(link.startswith(f"{base}/") for link in page.links)
        assert client.get(str(page.scripts[0]["src"])).status_code == 200
        assert client.get(f"{base}/static/dashboard.css").headers[
            "content-type"].startswith("text/css")
        assert client.get("/tasks").status_code == 404


def test_read_only_pages_say_so() -> None:
    for client in _client(DashboardConfig(read_only=True)):
        assert Page(client.get("/task/x").text).body["data-read-only"] == "1"
    for client in _client(DashboardConfig()):
        assert Page(client.get("/task/x").text).body["data-read-only"] == "0"


SCRIPTS = sorted(STATIC_DIR.glob("*.js"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_turn_text_into_html(script: Path) -> None:
    source = script.read_text()
    forbidden = re.findall(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"createContextualFragment|DOMParser|setAttribute\(\s*[\"']on", source)
    assert forbidden == []
    for imported in re.findall(r"from \"\./([\w.]+)\"", source):
        assert (STATIC_DIR / imported).is_file(), imported


def test_every_page_has_its_script() -> None:
    from celeriac.dashboard.pages import PAGES

    assert {p.stem for p in SCRIPTS} >= set(PAGES)

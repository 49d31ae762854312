"""Who may call the dashboard: API 401 by default, basic auth in constant time, session
cookies for the pages' own requests, CSRF on state-changing browser requests, read-only mode,
and the security headers on every response (errors included)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from celeriac.dashboard.app import DashboardConfig
from celeriac.dashboard.security import (
    CSP,
    CSRF_COOKIE,
    SESSION_COOKIE,
    parse_basic_auth,
    unauthenticated_api_allowed,
)
from tests.dashboard.api_support import StubCollector, client_for, make_app


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def open_client() -> Iterator[tuple[TestClient, StubCollector]]:
    """No auth configured, FLOWER_UNAUTHENTICATED_API not set."""
    yield from client_for(make_app(), DashboardConfig(unauthenticated_api=False))


@pytest.fixture
def auth_client() -> Iterator[tuple[TestClient, StubCollector]]:
    config = DashboardConfig(basic_auth=[("admin", "s3cret"), ("ops", "a:b:c")])
    yield from client_for(make_app(), config)


def test_api_answers_401_without_auth_config_while_health_answers(open_client: Any) -> None:
    client, _ = open_client
    for path in ("/api/workers", "/api/tasks", "/api/task/types", "/metrics",
                 "/api/openapi.json", "/api/events/stream"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "FLOWER_UNAUTHENTICATED_API" in response.json()["error"]
    assert client.post("/api/task/revoke/abc").status_code == 401
    health = client.get("/healthcheck")
    assert health.status_code == 200 and health.text == "OK"


def test_flower_unauthenticated_api_variable_opens_the_api(monkeypatch: Any) -> None:
    monkeypatch.setenv("FLOWER_UNAUTHENTICATED_API", "true")
    assert unauthenticated_api_allowed()
    for client, _ in client_for(make_app(), DashboardConfig()):
        assert client.get("/api/tasks").status_code == 200
    monkeypatch.setenv("FLOWER_UNAUTHENTICATED_API", "0")
    assert not unauthenticated_api_allowed()
    for client, _ in client_for(make_app(), DashboardConfig()):
        assert client.get("/api/tasks").status_code == 401


def test_basic_auth_accepts_each_configured_pair_only(auth_client: Any) -> None:
    client, _ = auth_client
    assert client.get("/api/tasks", headers=basic("admin", "s3cret")).status_code == 200
    # a password may contain ':'
    assert client.get("/api/tasks", headers=basic("ops", "a:b:c")).status_code == 200
    refused = [
        {},
        basic("admin", "wrong"),
        basic("admin", "s3cre"),
        basic("Admin", "s3cret"),
        basic("ops", "s3cret"),  # another user's password
        basic("", ""),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Bearer s3cret"},
        {"Authorization": "Basic"},
    ]
    for headers in refused:
        response = client.get("/api/tasks", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    # pages need the credentials too once auth is configured; health never does
    assert client.get("/").status_code == 401
    assert client.get("/healthcheck").status_code == 200


def test_security_headers_on_every_response(open_client: Any, auth_client: Any) -> None:
    for client, _ in (open_client, auth_client):
        for path in ("/api/tasks", "/healthcheck", "/no/such/page", "/"):
            response = client.get(path)
            assert response.headers["Content-Security-Policy"] == CSP, path
            assert "'unsafe-inline'" not in CSP and "default-src 'self'" in CSP
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"


def _session(client: TestClient) -> str:
    client.get("/")  # a page view hands out the session and CSRF cookies
    assert client.cookies.get(SESSION_COOKIE)
    token = client.cookies.get(CSRF_COOKIE)
    assert token
    return token


def test_the_pages_session_opens_the_api_and_a_forged_one_does_not(open_client: Any) -> None:
    client, _ = open_client
    _session(client)
    assert client.get("/api/tasks").status_code == 200
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, "forged.0123456789abcdef")
    assert client.get("/api/tasks").status_code == 401
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, "garbage")
    assert client.get("/api/tasks").status_code == 401


def test_csrf_token_required_on_state_changes_from_a_browser_session(open_client: Any) -> None:
    client, _ = open_client
    token = _session(client)
    assert client.post("/api/task/revoke/t1").status_code == 403
    wrong = client.post("/api/task/revoke/t1", headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403 and "CSRF" in wrong.json()["error"]
    ok = client.post("/api/task/revoke/t1", headers={"X-CSRF-Token": token})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"message": "Revoked 't1'"}
    # a token from another session does not pass
    other = TestClient(client.app)
    other_token = _session(other)
    assert client.post("/api/task/revoke/t1",
                       headers={"X-CSRF-Token": other_token}).status_code == 403


def test_scripts_need_no_csrf_token_but_cross_site_browsers_are_refused(
        auth_client: Any) -> None:
    client, _ = auth_client
    creds = basic("admin", "s3cret")
    script = client.post("/api/task/revoke/t2", headers={**creds,
                                                         "Content-Type": "application/json"},
                         content=b"{}")
    assert script.status_code == 200
    form = client.post("/api/task/revoke/t2", headers=creds, data={"terminate": "false"})
    assert form.status_code == 200
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        refused = client.post("/api/task/revoke/t2", headers={**creds, **headers})
        assert refused.status_code == 403, headers
    same = client.post("/api/task/revoke/t2", headers={
        **creds, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200


def test_read_only_refuses_every_state_change() -> None:
    config = DashboardConfig(read_only=True, unauthenticated_api=True)
    for client, _ in client_for(make_app(), config):
        for path in ("/api/task/revoke/x", "/api/task/async-apply/dash.add",
                     "/api/worker/shutdown/w1@host", "/api/task/rate-limit/dash.add"):
            response = client.post(path, json={})
            assert response.status_code == 403, path
            assert "read-only" in response.json()["error"]
        assert client.delete("/api/tasks").status_code == 403
        assert client.get("/api/tasks").status_code == 200


@pytest.mark.parametrize("value, expected", [
    ("a:b", [("a", "b")]),
    ("a:b,c:d", [("a", "b"), ("c", "d")]),
    (["a:b", "c:d:e"], [("a", "b"), ("c", "d:e")]),
    ("a:", [("a", "")]),
    ("", []),
])
def test_parse_basic_auth(value: Any, expected: Any) -> None:
    assert parse_basic_auth(value) == expected


@pytest.mark.parametrize("value", ["nocolon", ":pass", " :x", "a:b,broken"])
def test_parse_basic_auth_refuses_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parse_basic_auth(value)

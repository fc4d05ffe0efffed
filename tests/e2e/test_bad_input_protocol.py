"""Protocol-level bad input through the real local stack (gateway emulator, authorizers, handlers, moto),
sent raw with http.client so that nothing normalizes it: odd characters and over-long ids in every path
parameter, unserved methods (HEAD included), bodies that are not UTF-8, JSON nested too deep, non-JSON media
types. Each gets a 4xx with the contract's error body, never a 500, and nothing is recorded."""

from __future__ import annotations

import base64
import http.client
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from sandboxcp.api.resolver import MAX_JSON_DEPTH
from sandboxcp.routes import ROUTES, Route
from tests.e2e.conftest import Stack, callback_token_of

# The HTTP protocol: the same on every runtime.
pytestmark = [pytest.mark.e2e, pytest.mark.runtimes("process")]

EVENTS = Path(__file__).resolve().parents[2] / "events"
ERROR_FIELDS = {"error_code", "description", "error_detail", "solution", "request_id"}
BAD_VALUES = [
    '"',
    "\\",
    "#",
    "?",
    "\x00",
    "\x1b[31m",
    "\n",
    "€",
    "\u00d7",
    "😀",
    " ",
    "%",
    "x" * 3000,
    "é" * 1100,
]
NOT_FOUND = {
    "session_id": "Sandbox.SessionNotFound",
    "execution_id": "Sandbox.ExecutionNotFound",
    "template_id": "Sandbox.TemplateNotFound",
    "container_id": "Sandbox.ContainerNotFound",
    "tenant_id": "Sandbox.NotFound",
    "context_id": "Sandbox.ContextNotFound",
    "process_id": "Sandbox.ProcessNotFound",
}
TIMEOUT_S = 30
PARAM = re.compile(r"\{(\w+)\+?\}")


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def error(self, status: int, code: str | None = None, where: Any = None) -> dict[str, Any]:
        """The contract's error body, with `status` (and `code`)."""
        assert self.status == status, (where, self.status, self.body[:300])
        answer: dict[str, Any] = json.loads(self.body)
        assert set(answer) == ERROR_FIELDS, (where, answer)
        assert all(isinstance(v, str) and v for v in answer.values()), (where, answer)
        if code is not None:
            assert answer["error_code"] == code, (where, answer)
        return answer


def _sample(module: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / f"{module}.json").read_text()))


def _sample_body(module: str) -> bytes:
    event = _sample(module)
    raw = event.get("body") or ""
    return base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()


# Routes whose sample event sends JSON: the ones that must refuse other media types.
JSON_ROUTES = [
    r
    for r in ROUTES
    if _sample_body(r.module) and _sample(r.module)["headers"].get("Content-Type") == "application/json"
]


@dataclass
class Client:
    stack: Stack
    session_id: str
    callback_token: str

    def send(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """`path` exactly as given (already percent-encoded) on a fresh connection."""
        url = urlsplit(self.stack.url)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Answer(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def auth(self, route: Route) -> dict[str, str]:
        if route.auth == "none":
            return {}
        token = self.callback_token if route.auth == "callback" else self.stack.admin_key
        return {"Authorization": f"Bearer {token}"}

    def valid(self, name: str) -> str:
        return {
            "session_id": self.session_id,
            "container_id": self.session_id,
            "execution_id": "exec_20260101_00000001",
            "template_id": "python-basic",
            "path": "data/input.csv",
            "tenant_id": "tenant-e2e",
            "context_id": "ctx-0000000000000000",
            "process_id": "proc-0000000000000000",
        }[name]

    def call(self, route: Route, params: dict[str, str] | None = None, **kw: Any) -> Answer:
        """The route with valid path parameters but for `params` (percent-encoded here), and the sample
        event's body and Content-Type unless given."""
        path = route.path
        for name in PARAM.findall(route.path):
            value = quote((params or {}).get(name, self.valid(name)), safe="")
            path = path.replace("{" + name + "+}", value).replace("{" + name + "}", value)
        headers = {**self.auth(route), **kw.pop("headers", {})}
        body = kw.pop("body", None)
        if body is None and route.method in ("POST", "PUT"):
            body = _sample_body(route.module)
            headers.setdefault("Content-Type", _sample(route.module)["headers"].get("Content-Type", ""))
        if route.module == "internal_execution_result":
            headers.setdefault("Idempotency-Key", "k1")
        return self.send(kw.pop("method", route.method), path, body, headers)

    def recorded(self) -> dict[str, Any]:
        """What a request could leave behind, as the API shows it."""
        with self.stack.client() as api:
            sessions = api.get("/sessions", params={"limit": 200}).json()["sessions"]
            executions = api.get(f"/sessions/{self.session_id}/executions", params={"limit": 200}).json()
            templates = api.get("/templates").json()
            files = api.get(f"/sessions/{self.session_id}/files").json()
        return {
            "sessions": sorted((s["session_id"], s["status"]) for s in sessions),
            "executions": executions,
            "templates": templates,
            "files": sorted(f["path"] for f in files["files"]),
        }


@pytest.fixture(scope="module")
def client(stack: Stack, session: str) -> Client:
    return Client(stack, session, callback_token_of(session))


@pytest.fixture
def unchanged(client: Client) -> Iterator[Client]:
    before = client.recorded()
    yield client
    assert client.recorded() == before, "a refused request left something behind"


# --- 1. path parameters ---------------------------------------------------------------------------------


def test_odd_characters_and_over_long_ids_in_any_path_parameter(unchanged: Client) -> None:
    routes = [r for r in ROUTES if "{" in r.path]  # 17 public and 6 internal when written
    for route in routes:
        for name in PARAM.findall(route.path):
            for bad in BAD_VALUES:
                where = (route.method, route.path, name, bad[:10])
                answer = unchanged.call(route, {name: bad})
                if name == "path":  # a file path: the workspace rules judge it (400) or no such file (404)
                    assert answer.status in (400, 404), (where, answer.status, answer.body[:300])
                    answer.error(answer.status, where=where)
                else:
                    answer.error(404, NOT_FOUND[name], where=where)


# --- 2. methods no route serves ------------------------------------------------------------------------


def test_head_on_every_get_route_is_405_with_allow(unchanged: Client) -> None:
    for route in [r for r in ROUTES if r.method == "GET"]:
        answer = unchanged.call(route, method="HEAD")
        assert answer.status == 405, (route.path, answer.status)
        assert answer.body == b""  # a HEAD answer has no body
        allow = {m.strip() for m in answer.headers["Allow"].split(",")}
        assert allow == {r.method for r in ROUTES if r.path == route.path}, route.path
    health = unchanged.send("HEAD", "/api/v1/health")  # no key
    assert (health.status, health.headers["Allow"]) == (405, "GET")


def test_an_unserved_method_is_405_before_any_key_and_an_unknown_path_404(unchanged: Client) -> None:
    for method, path, allow in [
        ("PATCH", "/api/v1/sessions", "GET, POST"),
        ("PUT", f"/api/v1/sessions/{unchanged.session_id}", "DELETE, GET"),
        ("DELETE", "/api/v1/health", "GET"),
        ("OPTIONS", "/api/v1/templates/python-basic", "DELETE, GET, PUT"),
        ("GET", "/internal/executions/exec_20260101_00000001/heartbeat", "POST"),
    ]:
        answer = unchanged.send(method, path, b'{"template_id": "python-basic"}')  # no key
        detail = answer.error(405, "Sandbox.MethodNotAllowed", where=(method, path))["error_detail"]
        assert answer.headers["Allow"] == allow
        assert detail == f"{method} is not allowed on {path}; allowed: {allow}"
    answer = unchanged.send("GET", "/api/v1/nowhere")
    assert answer.error(404, "Sandbox.NotFound")["error_detail"] == "No route for GET /api/v1/nowhere"


# --- 3-5. bodies of JSON routes -------------------------------------------------------------------------


def test_a_body_that_is_not_utf8_is_a_400_on_every_json_route(unchanged: Client) -> None:
    assert {"sessions_create", "templates_update", "internal_execution_result"} <= {
        r.module for r in JSON_ROUTES
    }
    assert "files_upload" not in {r.module for r in JSON_ROUTES}
    for route in JSON_ROUTES:
        for raw in (
            b'{"template_id": "\xff\xfe"}',
            _sample_body(route.module)[:-1] + b"\x80}",
            b"\xed\xa0\x80",
        ):
            answer = unchanged.call(route, body=raw, headers={"Content-Type": "application/json"})
            detail = answer.error(400, "Sandbox.InvalidParameter", where=(route.path, raw[:20]))[
                "error_detail"
            ]
            assert "UTF-8" in detail


def test_json_nested_too_deep_is_a_400_on_every_json_route(unchanged: Client) -> None:
    for route in JSON_ROUTES:
        for text in ("[" * 1000 + "]" * 1000, '{"a":' * 50_000 + "1" + "}" * 50_000):
            answer = unchanged.call(route, body=text.encode(), headers={"Content-Type": "application/json"})
            detail = answer.error(400, "Sandbox.InvalidParameter", where=route.path)["error_detail"]
            assert f"deeper than {MAX_JSON_DEPTH}" in detail


def test_other_media_types_are_415_on_json_routes(unchanged: Client) -> None:
    for route in JSON_ROUTES:
        for content_type in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
            answer = unchanged.call(route, headers={"Content-Type": content_type})
            body = answer.error(415, "Sandbox.InvalidParameter", where=(route.path, content_type))
            assert body["description"] == "Unsupported media type"


def test_uploads_keep_taking_multipart_and_the_session_is_unharmed(client: Client) -> None:
    with client.stack.client() as api:
        sid = client.session_id
        up = api.post(f"/sessions/{sid}/files/upload", files={"file": ("p.bin", b"\xff\x00 bytes")})
        assert up.status_code == 200, up.text
        assert api.get(f"/sessions/{sid}/files/p.bin").content == b"\xff\x00 bytes"
        assert api.get(f"/sessions/{sid}").json()["status"] == "running"

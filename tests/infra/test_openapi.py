"""The committed OpenAPI documents (docs/openapi.json, docs/openapi-internal.json) are what
scripts/openapi.py generates from the handlers today, describe every route of the route table, and are
what the local stack serves next to its Swagger UI (sandboxcp.local.docs_ui)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from sandboxcp.local.docs_ui import ASSETS, DocsUi, swagger_ui_dir
from sandboxcp.routes import ROUTES

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = {"public": ROOT / "docs" / "openapi.json", "internal": ROOT / "docs" / "openapi-internal.json"}
BASES = {"public": "/api/v1", "internal": "/internal"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def document(api: str) -> dict[str, Any]:
    return dict(json.loads(DOCUMENTS[api].read_text()))


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items() if m in METHODS]


def test_committed_documents_are_generated_from_the_code() -> None:
    """Regenerates both documents in memory (in a fresh interpreter: it imports every handler module) and
    compares them with the committed files."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "openapi.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, (
        "docs/openapi.json or docs/openapi-internal.json differs from what the handlers give: run "
        f"`python3 scripts/openapi.py` and commit both files.\n{result.stdout}\n{result.stderr}"
    )


@pytest.mark.parametrize("api", ["public", "internal"])
def test_every_route_is_documented_with_its_path_variables(api: str) -> None:
    doc = document(api)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"][0]["url"] == BASES[api]
    documented = {(m, p): op for m, p, op in operations(doc)}
    routes = [r for r in ROUTES if r.api == api]
    assert len(documented) == len(routes)
    for route in routes:
        path = re.sub(r"\{(\w+)\+\}", r"{\1}", route.path.removeprefix(BASES[api]))
        op = documented[(route.method.lower(), path)]
        assert op["operationId"] == route.module
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        assert names == re.findall(r"\{(\w+)\+?\}", route.path), route
        assert op["security"] == (
            [] if route.auth == "none" else [{next(iter(doc["components"]["securitySchemes"])): []}]
        )


@pytest.mark.parametrize("api", ["public", "internal"])
def test_errors_are_described_with_the_contracts_error_body(api: str) -> None:
    doc = document(api)
    error = doc["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error_code", "description", "error_detail", "solution", "request_id"}
    scheme = next(iter(doc["components"]["securitySchemes"].values()))
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    for method, path, op in operations(doc):
        codes = {int(c) for c in op["responses"]}
        assert any(200 <= c < 400 for c in codes), (method, path)
        assert 500 in codes, (method, path)
        if op["security"]:
            assert 401 in codes, (method, path)
        if "{" in path:
            assert 404 in codes, (method, path)
        if "requestBody" in op:
            assert {400, 413} <= codes, (method, path)
        for code, response in op["responses"].items():
            if int(code) >= 400 and (op["operationId"], code) != ("health", "503"):  # 503: the health body
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }, (method, path, code)
        # powertools' own 422 model is replaced: validation errors are 400 Sandbox.InvalidParameter
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_file_transfers_are_described_with_their_media_types() -> None:
    paths = document("public")["paths"]
    upload = paths["/sessions/{session_id}/files/upload"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    download = paths["/sessions/{session_id}/files/{path}"]["get"]["responses"]
    assert "application/octet-stream" in download["200"]["content"]
    assert "Location" in download["307"]["headers"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]


@pytest.mark.parametrize("api", ["public", "internal"])
def test_component_schemas_are_json_schema_2020_12(api: str) -> None:
    from jsonschema import Draft202012Validator

    for name, schema in document(api)["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as err:
            pytest.fail(f"{name}: {err}")


# --- served by the local stack --------------------------------------------------------------------------
def _passthrough(environ: dict[str, Any], start_response: Any) -> Any:
    return Response("from the gateway", status=418)(environ, start_response)


@pytest.fixture
def client() -> Client:
    return Client(DocsUi(_passthrough))


def test_local_stack_serves_the_committed_documents(client: Client) -> None:
    for url, api in (("/api/v1/openapi.json", "public"), ("/api/v1/openapi-internal.json", "internal")):
        resp = client.get(url)
        assert resp.status_code == 200 and resp.mimetype == "application/json"
        assert resp.get_data() == DOCUMENTS[api].read_bytes()


def test_swagger_ui_loads_only_local_assets(client: Client) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert not re.search(r"(src|href)=\"https?:", html), "no CDN: every asset is served by the stack"
    initializer = client.get("/api/v1/docs/initializer.js").get_data(as_text=True)
    assert "/api/v1/openapi.json" in initializer and "validatorUrl: null" in initializer
    assert swagger_ui_dir() is not None, "swagger-ui-bundle-v2 (the local extra) is not installed"
    for asset in sorted(ASSETS):
        assert f"/api/v1/docs/{asset}" in html
        assert client.get(f"/api/v1/docs/{asset}").status_code == 200, asset


def test_other_requests_reach_the_gateway(client: Client) -> None:
    escape = client.get("/api/v1/docs/../../pyproject.toml")
    assert escape.status_code in (404, 418) and b"[project]" not in escape.get_data()
    assert client.get("/api/v1/docs/index.j2").status_code == 404  # only the listed assets
    assert client.post("/api/v1/docs").status_code == 418
    assert client.get("/api/v1/sessions").status_code == 418

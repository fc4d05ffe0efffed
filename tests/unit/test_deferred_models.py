"""Domain models and response bodies are built on first use (sandboxcp.domain.base): a class that was never
built must still serialize when pydantic-core infers it, which a warm process (every class built long ago)
never shows. Each check runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FRESH = r"""
import pickle, sys
from datetime import datetime, timezone
from typing import Any
from sandboxcp.api.schemas.sessions import SessionResponse
from sandboxcp.domain.base import DomainModel
from sandboxcp.domain.resources import ResourceLimit
from sandboxcp.domain.workspace import WorkspaceFile

assert not ResourceLimit.__pydantic_complete__, "built at import: nothing is deferred"
now = datetime(2026, 1, 1, tzinfo=timezone.utc)
# A nested field validated by its parent's schema, then serialized through the parent's field serializer.
body = SessionResponse(
    session_id="sess_a", template_id="python-basic", status="running", runtime_type="process",
    workspace_path="/workspace", resources={"cpu": "1", "memory": "512Mi", "disk": "1Gi"}, env_vars={},
    created_at=now, updated_at=now, timeout=60,
)
assert '"resources":{"cpu":"1"' in body.model_dump_json(), body.model_dump_json()


class Holder(DomainModel):
    value: Any


# An instance of a class never built, in a field whose type pydantic-core infers when serializing.
assert not WorkspaceFile.__pydantic_complete__
constructed = WorkspaceFile.model_construct(path="a.txt", size=1)
assert Holder(value=constructed).model_dump()["value"]["path"] == "a.txt"
print("ok")
"""

UNPICKLED = r"""
import pickle, sys
from typing import Any
from sandboxcp.domain.base import DomainModel
from sandboxcp.domain.resources import ResourceLimit

class Holder(DomainModel):
    value: Any

limit = pickle.loads(bytes.fromhex(sys.argv[1]))
assert Holder(value=limit).model_dump()["value"]["cpu"] == "2"
print("ok")
"""


def _fresh(code: str, *args: str) -> str:
    env_path = f"{ROOT / 'layers' / 'python'}:{ROOT / 'executor'}"
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def test_a_class_never_built_serializes_nested_constructed_and_inferred() -> None:
    assert _fresh(FRESH) == "ok"


def test_an_instance_unpickled_where_its_class_was_never_built_serializes() -> None:
    from sandboxcp.domain.resources import ResourceLimit

    pickled = __import__("pickle").dumps(ResourceLimit(cpu="2", memory="512Mi", disk="1Gi"))
    assert _fresh(UNPICKLED, pickled.hex()) == "ok"

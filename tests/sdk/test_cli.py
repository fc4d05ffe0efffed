"""`sandboxcp` commands against the real local stack: each command once, tables and --json, errors with
their solution, and `exec` exiting with the run's status."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxcp.cli import main
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def env(stack: Stack, tenant_key: str) -> Iterator[dict[str, str]]:
    saved = {k: os.environ.get(k) for k in ("SANDBOXCP_URL", "SANDBOXCP_API_KEY")}
    os.environ.update(SANDBOXCP_URL=stack.url, SANDBOXCP_API_KEY=tenant_key)
    yield {"SANDBOXCP_URL": stack.url, "SANDBOXCP_API_KEY": tenant_key}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
    try:
        code = main(list(argv))
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def session(env: dict[str, str]) -> Iterator[str]:
    out = subprocess.run(
        [sys.executable, "-m", "sandboxcp.cli", "sessions", "create", "--quiet", "--timeout", "900"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sid = out.strip()
    yield sid
    subprocess.run([sys.executable, "-m", "sandboxcp.cli", "sessions", "rm", sid], env={**os.environ, **env})


def test_sessions_create_ls_get_rm(capsys, env):
    code, out, _ = run(
        capsys,
        "sessions",
        "create",
        "--template",
        "python-basic",
        "--timeout",
        "120",
        "--env",
        "A=1",
        "--cpu",
        "1",
        "--idempotency-key",
        "cli-key-1",
        "--json",
    )
    assert code == 0
    created = json.loads(out)
    sid = created["session_id"]
    assert created["status"] == "running" and created["env_vars"] == {"A": "1"}
    code, out, _ = run(
        capsys,
        "sessions",
        "create",
        "--timeout",
        "120",
        "--env",
        "A=1",
        "--cpu",
        "1",
        "--idempotency-key",
        "cli-key-1",
        "-q",
    )
    assert out.strip() == sid  # the same key: the same session
    code, out, _ = run(capsys, "sessions", "ls")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["SESSION", "STATUS", "TEMPLATE"] and sid in out
    code, out, _ = run(capsys, "--json", "sessions", "ls", "--status", "running")
    assert sid in {s["session_id"] for s in json.loads(out)["sessions"]}
    code, out, _ = run(capsys, "sessions", "get", sid)
    assert code == 0 and "status" in out and "running" in out and "cpu=1" in out
    code, out, _ = run(capsys, "sessions", "rm", sid)
    assert code == 0 and f"{sid}: Session terminated" in out
    code, out, _ = run(capsys, "sessions", "get", sid, "--json")
    assert json.loads(out)["status"] == "terminated"


def test_errors_print_their_solution_and_exit_1(capsys, env):
    code, out, err = run(capsys, "sessions", "get", "sess_0000000000000000")
    assert code == 1 and out == ""
    assert "error: Sandbox.SessionNotFound" in err and "solution:" in err and "request_id:" in err
    code, _, err = run(capsys, "--json", "sessions", "get", "sess_0000000000000000")
    assert code == 1 and json.loads(err)["error"]["error_code"] == "Sandbox.SessionNotFound"
    code, _, err = run(capsys, "--url", "http://127.0.0.1:9", "sessions", "ls")
    assert code == 1 and "SANDBOXCP_URL" in err


def test_exec_from_a_file_stdin_and_c(capsys, env, session, tmp_path: Path):
    script = tmp_path / "job.py"
    script.write_text("print('from file')\n21 * 2\n")
    code, out, _ = run(capsys, "exec", session, str(script))
    assert code == 0 and out == "from file\n42\n"
    code, out, _ = run(capsys, "exec", session, "-", stdin="print('from stdin')")
    assert code == 0 and out == "from stdin\n"
    code, out, _ = run(capsys, "exec", session, "-c", "echo $((1 + 1))", "--lang", "shell")
    assert code == 0 and out == "2\n"
    js = tmp_path / "job.js"
    js.write_text("console.log('js')")
    assert run(capsys, "exec", session, str(js))[1] == "js\n"  # language from the suffix
    code, out, _ = run(
        capsys, "exec", session, "-c", "def handler(event):\n    return event", "--event", '{"a": 1}'
    )
    assert code == 0 and json.loads(out) == {"a": 1}
    code, out, _ = run(capsys, "exec", session, "-c", "print(1)", "--json")
    assert code == 0 and json.loads(out)["stdout"] == "1\n"


def test_exec_exits_non_zero_when_the_code_fails(capsys, env, session):
    code, _, err = run(capsys, "exec", session, "-c", "raise SystemExit(7)")
    assert code == 7 and "[failed: exit code 7" in err
    code, _, err = run(capsys, "exec", session, "-c", "1 / 0")
    assert code == 1 and "ZeroDivisionError" in err
    code, _, _ = run(capsys, "exec", session, "-c", "sleep 5", "--lang", "shell", "--timeout", "1")
    assert code == 124
    code, out, _ = run(capsys, "exec", session, "-c", "exit 3", "--lang", "shell", "--json")
    assert code == 3 and json.loads(out)["status"] == "failed", out
    # the real process too
    proc = subprocess.run(
        [sys.executable, "-m", "sandboxcp.cli", "exec", session, "-c", "import sys; sys.exit(5)"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 5
    proc = subprocess.run(
        [sys.executable, "-m", "sandboxcp.cli", "exec", session, "-"],
        input="print('ok')",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and proc.stdout == "ok\n"


def test_files_put_get_ls(capsys, env, session, tmp_path: Path):
    local = tmp_path / "in.csv"
    local.write_bytes(b"a,b\n1,2\n")
    code, out, _ = run(capsys, "files", "put", session, str(local), "data/in.csv")
    assert code == 0 and out.strip() == "data/in.csv  8 bytes"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 * 1024 * 1024))
    code, out, _ = run(capsys, "files", "put", session, str(big), "--json")
    assert code == 0 and json.loads(out) == {"path": "big.bin", "size": 5 * 1024 * 1024}
    code, out, _ = run(capsys, "files", "put", session, "-", "from-stdin.txt", stdin="piped")
    assert code == 0
    code, out, _ = run(capsys, "files", "ls", session)
    assert code == 0 and "PATH" in out and "data/in.csv" in out and "big.bin" in out
    target = tmp_path / "out.bin"
    code, out, _ = run(capsys, "files", "get", session, "big.bin", str(target))
    assert code == 0 and target.read_bytes() == big.read_bytes()
    code, out, _ = run(capsys, "files", "ls", session, "--json")
    assert {f["path"] for f in json.loads(out)} == {"data/in.csv", "big.bin", "from-stdin.txt"}
    code, _, err = run(capsys, "files", "get", session, "missing.txt", str(tmp_path / "m"))
    assert code == 1 and "Sandbox.FileNotFound" in err and "solution:" in err
    proc = subprocess.run(
        [sys.executable, "-m", "sandboxcp.cli", "files", "get", session, "from-stdin.txt", "-"],
        env={**os.environ, **env},
        capture_output=True,
    )
    assert proc.returncode == 0 and proc.stdout == b"piped"


def test_templates_ls_get_create_rm(capsys, env, stack: Stack, tmp_path: Path):
    code, out, _ = run(capsys, "templates", "ls")
    assert code == 0 and "python-datascience" in out and out.startswith("ID")
    code, out, _ = run(capsys, "templates", "get", "python-basic", "--json")
    assert json.loads(out)["id"] == "python-basic"
    code, out, _ = run(capsys, "templates", "get", "python-basic")
    assert "python,shell" in out
    spec = tmp_path / "tpl.json"
    spec.write_text(
        json.dumps(
            {
                "id": "cli-tpl",
                "name": "CLI",
                "image": "sandboxcp/python-basic:latest",
                "default_resources": {"cpu": "1", "memory": "512Mi", "disk": "1Gi"},
            }
        )
    )
    code, _, err = run(capsys, "templates", "create", "--file", str(spec))
    assert code == 1 and "Sandbox.Forbidden" in err  # a tenant key may not
    admin = ["--api-key", stack.admin_key]
    code, out, _ = run(
        capsys,
        *admin,
        "templates",
        "create",
        "--file",
        str(spec),
        "--name",
        "From CLI",
        "--packages",
        "numpy,pandas",
    )
    assert code == 0 and "From CLI" in out and "numpy,pandas" in out
    code, out, _ = run(
        capsys,
        "templates",
        "create",
        "--api-key",
        stack.admin_key,
        "--id",
        "cli-tpl-2",
        "--name",
        "Two",
        "--image",
        "sandboxcp/python-basic:latest",
        "--cpu",
        "1",
        "--memory",
        "512Mi",
        "--disk",
        "1Gi",
        "--json",
    )
    assert code == 0 and json.loads(out)["id"] == "cli-tpl-2"
    code, out, _ = run(capsys, *admin, "templates", "rm", "cli-tpl", "cli-tpl-2")
    assert code == 0 and "cli-tpl: deleted" in out
    assert "cli-tpl" not in run(capsys, "templates", "ls", "--json")[1]


def test_logs_tail_and_follow(capsys, env):
    code, sid, _ = run(capsys, "sessions", "create", "-q")
    sid = sid.strip()
    run(capsys, "exec", sid, "-c", "print('x')")
    code, out, _ = run(capsys, "logs", sid, "--tail", "3")
    assert code == 0 and len(out.splitlines()) == 3
    run(capsys, "sessions", "rm", sid)
    code, out, _ = run(capsys, "logs", sid, "--follow", "--tail", "5")  # ended: prints the tail and stops
    assert code == 0 and 1 <= len(out.splitlines()) <= 5
    code, _, err = run(capsys, "logs", "no-such-container")
    assert code == 1 and "Sandbox.ContainerNotFound" in err


def test_keys_create(capsys, env, stack: Stack):
    code, out, err = run(capsys, "keys", "create", "--tenant", "cli-tenant")
    assert code == 1 and "Sandbox.Forbidden" in err  # a tenant key cannot issue keys
    code, out, _ = run(capsys, "--api-key", stack.admin_key, "keys", "create", "--tenant", "cli-tenant")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == "tenant=cli-tenant admin=false" and lines[-1].startswith("sk_")
    code, out, _ = run(
        capsys, "keys", "create", "--tenant", "cli-admin", "--admin", "--json", "--api-key", stack.admin_key
    )
    assert json.loads(out)["admin"] is True

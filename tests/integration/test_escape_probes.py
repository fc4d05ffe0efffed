"""Escape probes: untrusted code tries to leave its sandbox, on both local runtimes (`process`: bubblewrap,
`docker`). Each probe runs through the public API in a real sandbox of a real local stack.

Network probes only ever aim at an unroutable public address (1.1.1.1, which no sandbox without network
can reach: the attempt fails at once) and at the host's own loopback port of the API."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.integration.conftest import create_running_session, run_code

pytestmark = pytest.mark.e2e

FOLLOW_UP = "def handler(event):\n    return 6 * 7\n"


@pytest.fixture(scope="module", params=["process", "docker"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if request.param == "docker":
        request.getfixturevalue("docker_engine")  # starts dockerd and builds the images, or fails
    s = start_stack(tmp_path_factory.mktemp(f"probes-{request.param}"), runtime=request.param)
    yield s
    stop_stack(s)


def _still_serves(api, sid: str) -> None:  # type: ignore[no-untyped-def]
    status, result = run_code(api, sid, FOLLOW_UP)
    assert status == "completed" and result["return_value"] == 42, (status, result)
    assert api.get(f"/sessions/{sid}").json()["status"] == "running"


def test_writes_outside_workspace_and_tmp_fail(stack: Stack) -> None:
    code = (
        "import os\n"
        "TARGETS = ['/probe', '/etc/probe', '/usr/probe', '/usr/bin/probe', '/opt/probe', '/var/probe',\n"
        "           '/root/probe', '/home/probe', '/dev/probe', '/proc/probe', '/sys/probe',\n"
        "           '/opt/sandbox-executor/probe']\n"
        "def handler(event):\n"
        "    written = []\n"
        "    for path in TARGETS:\n"
        "        try:\n"
        "            with open(path, 'w') as f:\n"
        "                f.write('x')\n"
        "            written.append(path)\n"
        "        except OSError:\n"
        "            pass\n"
        "    for d in ('/', '/etc', '/usr'):\n"
        "        try:\n"
        "            os.mkdir(d.rstrip('/') + '/probe-dir')\n"
        "            written.append(d + ' (mkdir)')\n"
        "        except OSError:\n"
        "            pass\n"
        "    ok = []\n"
        "    for path in ('/workspace/ok', '/tmp/ok'):\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('x')\n"
        "        ok.append(path)\n"
        "    return {'written': written, 'ok': ok}\n"
    )
    with stack.client() as api:
        sid = create_running_session(api)
        status, result = run_code(api, sid, code)
        assert status == "completed", result
        assert result["return_value"] == {"written": [], "ok": ["/workspace/ok", "/tmp/ok"]}
        api.delete(f"/sessions/{sid}")


def test_network_connections_fail(stack: Stack) -> None:
    api_port = urlsplit(stack.url).port
    code = (
        "import socket\n"
        "def handler(event):\n"
        "    out = {}\n"
        "    for host, port in (('1.1.1.1', 80), ('127.0.0.1', event['api_port'])):\n"
        "        try:\n"
        "            socket.create_connection((host, port), timeout=2).close()\n"
        "            out[host] = 'connected'\n"
        "        except OSError as exc:\n"
        "            out[host] = type(exc).__name__\n"
        "    return out\n"
    )
    with stack.client() as api:
        sid = create_running_session(api)
        status, result = run_code(api, sid, code, {"api_port": api_port})
        assert status == "completed", result
        seen = result["return_value"]
        assert set(seen) == {"1.1.1.1", "127.0.0.1"}
        assert "connected" not in seen.values(), seen
        api.delete(f"/sessions/{sid}")


def test_fork_bomb_stops_at_the_pids_limit_and_the_session_survives(stack: Stack) -> None:
    # Every process forks for 3 s (a real bomb, bounded in time so the probe ends on its own);
    # the original returns how many forks the kernel refused.
    code = (
        "import os, time\n"
        "def handler(event):\n"
        "    root, refused, deadline = os.getpid(), 0, time.time() + 3\n"
        "    while time.time() < deadline:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except OSError:\n"
        "            refused += 1\n"
        "            time.sleep(0.01)\n"
        "    if os.getpid() != root:\n"
        "        os._exit(0)\n"
        "    return {'refused': refused}\n"
    )
    with stack.client() as api:
        sid = create_running_session(
            api, resources={"cpu": "1", "memory": "512Mi", "disk": "1Gi", "max_processes": 64}
        )
        status, result = run_code(api, sid, code, timeout=90)
        assert status in ("completed", "failed"), (status, result)
        if status == "completed":
            assert result["return_value"]["refused"] > 0, "no fork was ever refused: no pids limit"
        _still_serves(api, sid)
        api.delete(f"/sessions/{sid}")


def test_allocating_past_the_memory_limit_ends_the_run_not_the_session(stack: Stack) -> None:
    code = (
        "def handler(event):\n"
        "    data = b'x' * (1 << 30)  # 1 GiB, every page written\n"
        "    return len(data)\n"
    )
    with stack.client() as api:
        sid = create_running_session(api, resources={"cpu": "1", "memory": "256Mi", "disk": "1Gi"})
        status, result = run_code(api, sid, code, timeout=90)
        assert status == "failed", (status, result)
        assert result.get("return_value") is None
        assert result["exit_code"] != 0
        _still_serves(api, sid)
        api.delete(f"/sessions/{sid}")


def test_code_runs_as_uid_1000_without_capabilities(stack: Stack) -> None:
    code = (
        "import os\n"
        "def handler(event):\n"
        "    status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines())\n"
        "    field = lambda name: status[name].strip()\n"
        "    return {\n"
        "        'ids': [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],\n"
        "        'groups': os.getgroups(),\n"
        "        'cap_eff': field('CapEff'), 'cap_prm': field('CapPrm'), 'cap_inh': field('CapInh'),\n"
        "        'cap_amb': field('CapAmb'), 'no_new_privs': field('NoNewPrivs'),\n"
        "    }\n"
    )
    with stack.client() as api:
        sid = create_running_session(api)
        status, result = run_code(api, sid, code)
        assert status == "completed", result
        seen = result["return_value"]
        zero = "0000000000000000"
        assert seen["ids"] == [1000, 1000, 1000, 1000]
        assert set(seen["groups"]) <= {1000}
        assert seen["cap_eff"] == zero and seen["cap_prm"] == zero
        assert seen["cap_inh"] == zero and seen["cap_amb"] == zero
        assert seen["no_new_privs"] == "1"
        api.delete(f"/sessions/{sid}")

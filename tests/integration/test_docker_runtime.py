"""The docker runtime on a real engine: hardened containers, code running through the API, terminate,
a container killed from outside, and the adapter's own calls (state, logs, list_managed, errors)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sandboxcp.adapters.runtimes import disk
from sandboxcp.adapters.runtimes.docker import DockerRuntime, demux_logs, node_from_host
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.ports import SandboxSpec
from sandboxcp.domain.resources import ResourceLimit
from tests.e2e.conftest import Stack, start_stack, stop_stack, wait_for
from tests.integration.conftest import create_running_session, docker, inspect, run_code

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


def _runtime(tmp_path: Path) -> DockerRuntime:
    return DockerRuntime(
        [node_from_host("unix:///var/run/docker.sock")], state_dir=str(tmp_path), callback_base_url=""
    )


def _container_of(stack: Stack, sid: str) -> str:
    with stack.client() as api:
        container_id = api.get(f"/sessions/{sid}").json()["container_id"]
    assert container_id, "the session records no container id"
    return str(container_id)


def test_session_container_is_hardened(docker_stack: Stack) -> None:
    with docker_stack.client() as api:
        sid = create_running_session(api)
        info = inspect(_container_of(docker_stack, sid))
        assert info is not None
        config, host = info["Config"], info["HostConfig"]
        assert info["Name"] == f"/sandbox-{sid}"
        assert config["Image"] == "sandboxcp/python-basic:latest"
        assert config["User"] == "1000:1000"
        assert config["Labels"]["sandboxcp.session"] == sid
        assert config["Labels"]["sandboxcp.managed"] == "true"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert not host.get("CapAdd")
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["Privileged"] is False
        assert not host.get("Init")  # our non-dumpable supervisor is PID 1, not docker-init
        assert host["PidsLimit"] == 128
        assert host["Memory"] == 512 * MiB
        assert host["MemorySwap"] == 512 * MiB  # no swap on top
        assert host["NanoCpus"] == 1_000_000_000
        assert host["NetworkMode"] == "none"
        assert "size=64m" in host["Tmpfs"]["/tmp"] and "mode=1777" in host["Tmpfs"]["/tmp"]
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        assert set(mounts) == {"/workspace", "/run/sandbox", "/run/controlplane.sock"}
        assert all(m["Type"] == "bind" for m in mounts.values())
        assert mounts["/run/controlplane.sock"]["Source"] == str(docker_stack.state_dir / "internal.sock")
        workspace = Path(mounts["/workspace"]["Source"])
        assert workspace.is_relative_to(docker_stack.state_dir) and os.path.ismount(workspace)  # ext4 image
        st = workspace.stat()
        assert (st.st_uid, st.st_gid) == (1000, 1000) and not st.st_mode & stat.S_IWOTH
        run = Path(mounts["/run/sandbox"]["Source"])
        st = run.stat()  # sealed: the sandbox (uid 1000) cannot replace its executor's socket
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
        assert os.listdir(run) == ["executor.sock"]
        env = dict(e.split("=", 1) for e in config["Env"])
        assert "SANDBOXCP_CALLBACK_TOKEN" not in env
        assert env["SANDBOXCP_LISTEN"] == "unix:/run/sandbox/executor.sock"
        assert env["SANDBOXCP_CALLBACK_URL"] == "unix:///run/controlplane.sock"
        assert not any(k.startswith("AWS_") for k in env)
        api.delete(f"/sessions/{sid}")


def test_python_runs_in_the_container_through_the_api(docker_stack: Stack) -> None:
    code = (
        "import os, socket\n"
        "def handler(event):\n"
        "    print('hi from', socket.gethostname())\n"
        "    assert os.path.exists('/.dockerenv')\n"
        "    return event['x'] * 2\n"
    )
    with docker_stack.client() as api:
        sid = create_running_session(api)
        status, result = run_code(api, sid, code, {"x": 21})
        assert status == "completed", result
        assert result["return_value"] == 42
        assert result["stdout"] == "hi from sandbox\n"
        assert result["exit_code"] == 0
        api.delete(f"/sessions/{sid}")


@pytest.mark.parametrize(
    ("template", "language", "code", "expected"),
    [
        (
            "python-datascience",
            "python",
            "import numpy, pandas\n"
            "def handler(event):\n"
            "    return int(pandas.DataFrame({'x': numpy.arange(event['n'])})['x'].sum())\n",
            45,
        ),
        (
            "nodejs-basic",
            "javascript",
            "exports.handler = async (e) => [process.version.slice(0, 4), e.n * 2];",
            ["v20.", 20],
        ),
        ("python-basic", "shell", 'echo "$(id -u) $(cat)"', None),
    ],
    ids=["python-datascience", "nodejs-basic", "shell"],
)
def test_each_template_image_runs_its_language(
    docker_stack: Stack, template: str, language: str, code: str, expected: object
) -> None:
    with docker_stack.client() as api:
        sid = create_running_session(api, template_id=template)
        status, result = run_code(api, sid, code, {"n": 10}, language=language)
        assert status == "completed", result
        if language == "shell":
            assert result["stdout"] == '1000 {"n": 10}\n'
        else:
            assert result["return_value"] == expected
        api.delete(f"/sessions/{sid}")


def test_terminate_removes_the_container_and_its_dirs(docker_stack: Stack) -> None:
    with docker_stack.client() as api:
        sid = create_running_session(api)
        container = _container_of(docker_stack, sid)
        assert inspect(container) is not None
        session_dir = docker_stack.state_dir / "sessions" / sid
        assert session_dir.is_dir()
        assert api.delete(f"/sessions/{sid}").status_code == 200
        assert api.get(f"/sessions/{sid}").json()["status"] == "terminated"
        assert wait_for(lambda: inspect(container) is None, timeout=10), "container outlived its session"
        assert not session_dir.exists()


def test_container_killed_from_outside_fails_its_session(docker_stack: Stack) -> None:
    """SIGKILL leaves the executor no chance to report container_exited: the control plane must notice
    by itself (a reaper asking the runtime's state())."""
    with docker_stack.client() as api:
        sid = create_running_session(api)
        container = _container_of(docker_stack, sid)
        docker("kill", container)
        failed = wait_for(lambda: api.get(f"/sessions/{sid}").json()["status"] == "failed", timeout=30)
        assert failed, (
            f"session not failed 30 s after its container was killed: {api.get(f'/sessions/{sid}').json()}"
        )
        api.delete(f"/sessions/{sid}")


def test_adapter_state_logs_and_managed_list(docker_engine: None, tmp_path: Path) -> None:
    """On a container of our own (TCP mode, its callback URL leads nowhere, so its executor keeps
    retrying container_ready and stays up): state through its life, logs, the managed list."""
    runtime = DockerRuntime(
        [node_from_host("unix:///var/run/docker.sock")],
        state_dir=str(tmp_path),
        callback_base_url="http://127.0.0.1:9/unused",
    )
    sid = "sess_adapterstate0000"
    handle = runtime.start(
        SandboxSpec(
            session_id=sid,
            image="sandboxcp/python-basic:latest",
            resources=ResourceLimit(),
            env={"SANDBOXCP_SESSION_ID": sid},
        )
    )
    container = handle.container_id
    try:
        assert handle.node == "local-docker"
        assert handle.executor_url and handle.executor_url.startswith("http://127.0.0.1:")
        info = inspect(container)
        assert info is not None
        assert info["HostConfig"]["PortBindings"]["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]
        assert info["HostConfig"]["NetworkMode"] == "bridge"
        assert runtime.state(container) == "running"
        assert (container, sid, "running") in runtime.list_managed()
        assert runtime.ping() is True
        assert runtime.ping_node("unix:///var/run/docker.sock") is True
        assert wait_for(lambda: any("listening" in line for line in runtime.logs(container)), timeout=10), (
            runtime.logs(container)
        )
        assert len(runtime.logs(container, tail=1)) == 1
        docker("kill", container)
        assert wait_for(lambda: runtime.state(container) == "exited", timeout=10)
    finally:
        runtime.destroy(container)
    assert runtime.state(container) == "missing"
    assert runtime.logs(container) == []
    assert all(c[0] != container for c in runtime.list_managed())
    runtime.destroy(container)  # already gone: still fine
    assert not (tmp_path / "sessions" / sid).exists()


def test_missing_image_is_a_clear_error(docker_engine: None, tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    spec = SandboxSpec(
        session_id="sess_noimage0000000000", image="sandboxcp/not-built:latest", resources=ResourceLimit()
    )
    with pytest.raises(SandboxUnavailable) as err:
        runtime.start(spec)
    assert "sandboxcp/not-built:latest" in err.value.detail
    assert "scripts/build_images.sh" in err.value.solution
    assert not (tmp_path / "sessions" / spec.session_id).exists()


def _socket_mode_runtime(tmp_path: Path) -> DockerRuntime:
    """Local mode: sandboxes get a sized workspace disk, formatted while the engine creates them."""
    return DockerRuntime(
        [node_from_host("unix:///var/run/docker.sock")],
        state_dir=str(tmp_path),
        callback_base_url=f"unix://{tmp_path}/cp.sock",
    )


def _mounted_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def test_a_failed_create_leaves_no_workspace_mounted(docker_engine: None, tmp_path: Path) -> None:
    """The workspace disk is formatted and mounted while the engine creates the container; when the
    create fails, the runtime waits for it and removes it: nothing stays mounted or on disk."""
    assert disk.available(), "the docker runtime's workspace disks need root, loop devices and mkfs.ext4"
    runtime = _socket_mode_runtime(tmp_path)
    spec = SandboxSpec(
        session_id="sess_noimagedisk000000", image="sandboxcp/not-built:latest", resources=ResourceLimit()
    )
    with pytest.raises(SandboxUnavailable, match="not-built"):
        runtime.start(spec)
    assert _mounted_under(tmp_path) == []
    assert not (tmp_path / "sessions" / spec.session_id).exists()


def test_a_workspace_that_cannot_be_made_leaves_no_container(
    docker_engine: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_disk(session_dir: Path, size_mb: int, owner: tuple[int, int]) -> None:
        raise disk.DiskUnavailable("mkfs.ext4 failed: no space left on device")

    monkeypatch.setattr(disk, "available", lambda: True)
    monkeypatch.setattr(disk, "format_and_mount", no_disk)
    runtime = _socket_mode_runtime(tmp_path)
    sid = "sess_nodisk0000000000"
    spec = SandboxSpec(session_id=sid, image="sandboxcp/python-basic:latest", resources=ResourceLimit())
    with pytest.raises(SandboxUnavailable, match="no space left"):
        runtime.start(spec)
    assert docker("ps", "-aq", "--filter", f"name=sandbox-{sid}").stdout.strip() == ""
    assert not (tmp_path / "sessions" / sid).exists()


def test_unreachable_engine_is_sandbox_unavailable(tmp_path: Path) -> None:
    runtime = DockerRuntime(
        [node_from_host(f"unix://{tmp_path}/no-docker.sock")], state_dir=str(tmp_path), callback_base_url=""
    )
    with pytest.raises(SandboxUnavailable) as err:
        runtime.state("abc")
    assert "unreachable" in err.value.detail
    assert runtime.ping() is False


def test_log_frames_are_demultiplexed() -> None:
    frames = b"\x01\0\0\0\0\0\0\x06hello\n" + b"\x02\0\0\0\0\0\0\x04err\n"
    assert demux_logs(frames) == b"hello\nerr\n"
    assert demux_logs(b"raw tty output\n") == b"raw tty output\n"
    assert demux_logs(b"") == b""


def test_stopping_the_stack_removes_every_container(docker_engine, tmp_path):  # type: ignore[no-untyped-def]
    own = start_stack(tmp_path, runtime="docker")
    try:
        with own.client() as api:
            sid = create_running_session(api)
            container = f"sandbox-{sid}"
            assert inspect(container) is not None
    finally:
        stop_stack(own)
    assert own.process.returncode == 0
    assert wait_for(lambda: inspect(container) is None, timeout=10), "a container outlived the local stack"

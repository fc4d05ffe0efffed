"""`sandboxcp local` and its ports: `--port 0` serves on a port the kernel picks and prints it; a port in use
is refused in one line before anything starts (no traceback, no moto server, no sandbox)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from sandboxcp.local.child_stack import start_child_stack


def test_port_zero_serves_on_the_printed_url(tmp_path: Path) -> None:
    proc, url = start_child_stack("process", tmp_path / "state", dict(os.environ), tmp_path / "stack.log")
    try:
        port = int(url.rsplit(":", 1)[1])
        assert port != 0
        assert httpx.get(f"{url}/api/v1/health", timeout=5).json()["status"] == "healthy"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_a_port_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        argv = ["local", "--port", str(port), "--state-dir", str(tmp_path)]
        done = subprocess.run(
            [sys.executable, "-m", "sandboxcp.cli", *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "SANDBOXCP_URL" not in done.stdout

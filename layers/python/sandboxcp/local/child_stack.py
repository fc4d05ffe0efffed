"""`sandboxcp local` in a child process, as the tests and benches start it.

The child listens on a port the kernel picks (`--port 0`) and prints its URL once it serves; the parent reads
that line from the child's log. A port chosen by the parent and handed over would be free only when chosen:
any socket of the machine, an outgoing connection's local end included, may take it before the child binds.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

URL_LINE = "SANDBOXCP_URL="


class ChildStackFailed(Exception):
    """The child stack exited, or did not serve in time; the message carries its log."""


def start_child_stack(
    runtime: str,
    state_dir: Path,
    env: Mapping[str, str],
    log_path: Path,
    *,
    timeout_s: float = 60,
    python: Sequence[str] = (sys.executable, "-m", "sandboxcp.cli"),
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start the stack on `runtime`, its output to `log_path` (a file, not a pipe: nobody reads a pipe
    while tests run, and a full one would freeze the stack). Returns the process and its base URL once
    `/api/v1/health` answers 200."""
    argv = [*python, "local", "--port", "0", "--runtime", runtime, "--state-dir", str(state_dir)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    deadline = time.monotonic() + timeout_s
    url: str | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ChildStackFailed(f"local stack exited early:\n{log_path.read_text(errors='replace')}")
        url = url or _printed_url(log_path)
        if url is not None:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise ChildStackFailed(
        f"local stack did not answer /api/v1/health within {timeout_s:.0f} s:\n"
        f"{log_path.read_text(errors='replace')}"
    )


def _printed_url(log_path: Path) -> str | None:
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith(URL_LINE):
            return line[len(URL_LINE) :].strip()
    return None

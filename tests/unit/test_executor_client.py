"""The control plane's executor client: it connects only to a real unix socket, never through a symlink
that sandboxed code could have planted in its own socket directory."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from sandboxcp.adapters.executor_client import HttpExecutorClient
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.domain.models import Execution
from sandboxcp.domain.states import ExecutionStatus

EXECUTION = Execution(
    execution_id="exec_20260101_00000001",
    session_id="sess_0000000000000001",
    tenant_id="t",
    status=ExecutionStatus.PENDING,
    code="x",
    language="python",
    timeout=30,
    created_at=datetime.now(UTC),
)


def test_a_symlinked_socket_is_refused(tmp_path):
    target = tmp_path / "other.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(target))
    server.listen()
    link = tmp_path / "executor.sock"
    link.symlink_to(target)
    try:
        with pytest.raises(SandboxUnavailable, match="replaced"):
            HttpExecutorClient().submit(f"unix://{link}", EXECUTION)
    finally:
        server.close()


def test_a_missing_socket_is_unavailable(tmp_path):
    with pytest.raises(SandboxUnavailable, match="gone"):
        HttpExecutorClient().submit(f"unix://{tmp_path / 'none.sock'}", EXECUTION)


class _Impostor:
    """What hostile code that took over its executor's socket could answer to /execute (execute-sync)."""

    def __init__(self, path: str, body: bytes) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler
        from socketserver import ThreadingMixIn, UnixStreamServer

        payload = body
        self.sent = 0

        class Handler(BaseHTTPRequestHandler):
            def address_string(self) -> str:
                return "sandbox"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(handler) -> None:  # the outer self is the impostor
                handler.rfile.read(int(handler.headers["Content-Length"]))
                handler.send_response(200)
                handler.send_header("Content-Length", str(len(payload)))
                handler.end_headers()
                try:
                    for start in range(0, len(payload), 1 << 16):
                        handler.wfile.write(payload[start : start + (1 << 16)])
                        self.sent = start + (1 << 16)
                except OSError:
                    pass  # the client stopped reading

        class Server(ThreadingMixIn, UnixStreamServer):
            daemon_threads = True

        self.server = Server(path, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_executors_answer_is_read_only_up_to_the_callbacks_bound(tmp_path):
    """An answer past 10 MiB is not read on (the control plane's memory is not the sandbox's to fill): the
    client hands back an empty result, which the service fails as invalid (test_executions_api.py)."""
    from sandboxcp.adapters.executor_client import MAX_ANSWER_BYTES

    huge = b'{"execution_id": "x", "status": "completed", "result": {"stdout": "' + b"A" * (64 << 20) + b'"}}'
    impostor = _Impostor(str(tmp_path / "executor.sock"), huge)
    try:
        answer = HttpExecutorClient().submit(
            f"unix://{tmp_path / 'executor.sock'}", EXECUTION, executor_key="k", wait_s=5
        )
        assert answer == {}
        assert impostor.sent < len(huge) // 2  # it stopped reading near the bound, not at the end
        assert MAX_ANSWER_BYTES == 10 * 1024 * 1024
    finally:
        impostor.close()


def test_an_answer_that_is_not_a_result_is_handed_back_empty(tmp_path):
    impostor = _Impostor(str(tmp_path / "executor.sock"), b"<html>not json</html>")
    try:
        assert (
            HttpExecutorClient().submit(
                f"unix://{tmp_path / 'executor.sock'}", EXECUTION, executor_key="k", wait_s=5
            )
            == {}
        )
    finally:
        impostor.close()

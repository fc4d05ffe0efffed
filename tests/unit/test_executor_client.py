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

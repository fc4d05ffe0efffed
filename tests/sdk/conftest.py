"""The SDK, CLI and MCP tests run against the real local stack (process runtime, bubblewrap sandboxes):
one stack per test module, started with tests/e2e/conftest.py's start_stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("sdk-stack"))
    yield s
    stop_stack(s)


@pytest.fixture(scope="module")
def tenant_key(stack: Stack) -> str:
    """A tenant (non-admin) key, issued through the SDK."""
    from sandboxcp_client import SandboxClient

    with SandboxClient(stack.url, stack.admin_key) as admin:
        return admin.keys.create("sdk-tenant").api_key

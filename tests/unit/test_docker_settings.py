"""The docker runtime's default node comes from Settings (the DOCKER_* variables), nothing from os.environ."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxcp.adapters.runtimes.docker import DockerRuntime
from sandboxcp.domain.errors import SandboxUnavailable
from sandboxcp.local.aws import local_settings_env
from sandboxcp.settings import Settings

TABLES = local_settings_env("/tmp/sandboxcp-docker-settings", "docker")  # the tables every Settings needs


def test_the_default_nodes_networks_and_publish_address_come_from_settings() -> None:
    settings = Settings.model_validate(
        {
            **TABLES,
            "DOCKER_HOST": "tcp://10.0.0.7:2376",
            "DOCKER_SANDBOX_NETWORK": "sandboxes-closed",
            "DOCKER_OPEN_NETWORK": "sandboxes-open",
            "DOCKER_PUBLISH_HOST": "10.0.0.8",
        }
    )
    node = DockerRuntime.from_settings(settings).node(None)
    assert (node.endpoint, node.network, node.open_network, node.publish_host) == (
        "tcp://10.0.0.7:2376",
        "sandboxes-closed",
        "sandboxes-open",
        "10.0.0.8",
    )


def test_without_them_a_remote_node_keeps_its_defaults() -> None:
    node = DockerRuntime.from_settings(
        Settings.model_validate({**TABLES, "DOCKER_HOST": "tcp://10.0.0.7:2376"})
    ).node(None)
    assert (node.network, node.open_network, node.publish_host) == ("bridge", "", "10.0.0.7")


def test_a_cert_path_setting_is_where_a_remote_engines_client_tls_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)  # only the Settings value may count
    settings = Settings.model_validate(
        {**TABLES, "DOCKER_HOST": "tcp://10.0.0.7:2376", "DOCKER_CERT_PATH": str(tmp_path)}
    )
    with pytest.raises(SandboxUnavailable, match=f"cannot read {tmp_path}/ca.pem"):
        DockerRuntime.from_settings(settings).client()
    without = Settings.model_validate({**TABLES, "DOCKER_HOST": "tcp://10.0.0.7:2376"})
    with pytest.raises(SandboxUnavailable, match="needs client TLS"):
        DockerRuntime.from_settings(without).client()

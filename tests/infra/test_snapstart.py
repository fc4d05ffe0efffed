"""Lambda SnapStart (docs/deploy.md, "SnapStart"; sandboxcp_infra/functions.py): the functions someone waits
on (the public and internal APIs, their authorizers, the launch steps, the WebSocket API) restore a snapshot
of a published version, and everything that invokes them invokes that version's `live` alias; the jobs keep
invoking $LATEST without SnapStart. In every runtime variant."""

from __future__ import annotations

from typing import Any

from sandboxcp.routes import AUTHORIZERS, JOBS, LAUNCH_STEPS, ROUTES
from sandboxcp_infra.functions import LIVE_ALIAS
from sandboxcp_infra.layers import RUNTIME
from tests.infra import helpers as h
from tests.infra.conftest import Synthesized

WEBSOCKET_MODULES = ("ws_authorizer", "ws_connect", "ws_disconnect", "ws_subscribe")
SNAP_START = {"ApplyOn": "PublishedVersions"}


def _snap_start_modules() -> set[str]:
    return {
        *(r.module for r in ROUTES),
        *(j.module for j in AUTHORIZERS.values()),
        *(j.module for j in LAUNCH_STEPS.values()),
    }


def _functions_by_module(synth: Synthesized) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        r["Properties"]["Handler"].removesuffix(".handler"): (lid, r)
        for lid, r in h.of_type(synth, "AWS::Lambda::Function").items()
        if str(r["Properties"].get("Handler", "")).endswith(".handler")
    }


def test_request_path_functions_restore_snapshots_of_their_live_version(variant: Synthesized) -> None:
    functions = _functions_by_module(variant)
    wanted = _snap_start_modules() | set(WEBSOCKET_MODULES)
    aliases = {
        next(iter(h.refs(a["Properties"]["FunctionName"]))): a
        for a in h.of_type(variant, "AWS::Lambda::Alias").values()
    }
    assert wanted <= functions.keys()
    for module in sorted(wanted):
        function_id, function = functions[module]
        props = function["Properties"]
        assert props.get("SnapStart") == SNAP_START, module
        # SnapStart for Python needs 3.12 or newer; it excludes provisioned concurrency, EFS and more than
        # 512 MB of ephemeral storage: none is configured.
        assert props["Runtime"] == RUNTIME.name and RUNTIME.supports_snap_start
        assert "FileSystemConfigs" not in props
        assert props.get("EphemeralStorage", {"Size": 512})["Size"] <= 512
        alias = aliases[function_id]["Properties"]
        assert alias["Name"] == LIVE_ALIAS
        assert "ProvisionedConcurrencyConfig" not in alias
        (version_id,) = h.refs(alias["FunctionVersion"])
        version = variant.resources[version_id]
        assert version["Type"] == "AWS::Lambda::Version"
        assert version["Properties"]["FunctionName"] == {"Ref": function_id}
        assert "ProvisionedConcurrencyConfig" not in version["Properties"]
        # A replaced version is deleted, and its cached snapshot with it.
        assert version.get("DeletionPolicy") == "Delete", module


def test_jobs_keep_running_latest_without_snapstart(variant: Synthesized) -> None:
    functions = _functions_by_module(variant)
    for job in JOBS:
        _, function = functions[job.module]
        assert "SnapStart" not in function["Properties"], job.module
    assert set(h.alias_ids(variant)) == _snap_start_modules()


def test_invokers_invoke_the_live_alias_never_latest(variant: Synthesized) -> None:
    """API Gateway's invoke permissions (REST routes and authorizers, WebSocket routes and authorizer) name
    the aliases: an invocation of $LATEST would run a cold init instead of restoring a snapshot."""
    functions = _functions_by_module(variant)
    snap_functions = {functions[m][0] for m in _snap_start_modules() | set(WEBSOCKET_MODULES)}
    alias_ids = {lid for lid, _ in h.of_type(variant, "AWS::Lambda::Alias").items()}
    permissions = [
        p["Properties"]
        for p in h.of_type(variant, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert permissions
    for permission in permissions:
        target = h.refs(permission["FunctionName"])
        assert not target & snap_functions, permission
        assert target & alias_ids, permission
    for integration in h.of_type(variant, "AWS::ApiGatewayV2::Integration").values():
        assert h.refs(integration["Properties"]["IntegrationUri"]) & alias_ids

"""The live-output WebSocket API (docs/streaming.md, sandboxcp_infra/streaming.py) as wired into the stack:
its routes, stage and access logs, the subscribers table, and the management-API grant to post to this
API's connections (nothing wider), in every runtime variant."""

from __future__ import annotations

import json
from typing import Any

from sandboxcp.routes import all_modules
from sandboxcp_infra import streaming
from tests.infra import helpers as h
from tests.infra.conftest import Synthesized

MANAGE = "execute-api:ManageConnections"


def _api_id(synth: Synthesized) -> str:
    (api_id,) = h.of_type(synth, "AWS::ApiGatewayV2::Api")
    return api_id


def _manage_grants(synth: Synthesized, role_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in h.of_type(synth, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(a.startswith("execute-api:") for a in h.as_list(s["Action"]))
    ]


def test_websocket_api_routes_and_stage(variant: Synthesized) -> None:
    api_id = _api_id(variant)
    api = variant.resources[api_id]["Properties"]
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in h.of_type(variant, "AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == {"Ref": api_id}
    }
    assert set(routes) == {"$connect", "$disconnect", "subscribe"}
    # The API key is checked once, on $connect (WebSocket APIs take an authorizer there only).
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    (authorizer_id,) = h.of_type(variant, "AWS::ApiGatewayV2::Authorizer")
    assert routes["$connect"]["AuthorizerId"] == {"Ref": authorizer_id}
    authorizer = variant.resources[authorizer_id]["Properties"]
    assert authorizer["IdentitySource"] == ["route.request.header.Authorization"]
    handlers = {f["Properties"]["Handler"] for f in h.of_type(variant, "AWS::Lambda::Function").values()}
    ws_modules = ("ws_authorizer", "ws_connect", "ws_disconnect", "ws_subscribe")
    assert {f"{m}.handler" for m in ws_modules} <= handlers

    (stage,) = [
        s["Properties"]
        for s in h.of_type(variant, "AWS::ApiGatewayV2::Stage").values()
        if s["Properties"]["ApiId"] == {"Ref": api_id}
    ]
    assert stage["StageName"] == streaming.STAGE
    assert stage["AutoDeploy"] is True
    logs = stage["AccessLogSettings"]
    (log_group,) = h.refs(logs["DestinationArn"])
    assert variant.resources[log_group]["Type"] == "AWS::Logs::LogGroup"
    assert variant.resources[log_group]["Properties"]["RetentionInDays"] == 30
    assert {"requestId", "connectionId", "routeKey", "status"} <= set(json.loads(logs["Format"]))
    assert "LiveOutputUrl" in variant.outputs


def test_subscribers_table_expires_through_ttl(variant: Synthesized) -> None:
    table_id = variant.logical_id(variant.stack.live_output.subscribers)
    table = variant.resources[table_id]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_only_publishers_and_ws_functions_post_to_this_apis_connections(variant: Synthesized) -> None:
    api_id = _api_id(variant)
    live = variant.stack.live_output
    table_id = variant.logical_id(live.subscribers)
    ws_roles = {
        f["Properties"]["Role"]["Fn::GetAtt"][0]: f["Properties"]["Handler"].removesuffix(".handler")
        for f in h.of_type(variant, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler", "").startswith(("ws_disconnect.", "ws_subscribe."))
    }
    module_roles = {h.function(variant, m)["Properties"]["Role"]["Fn::GetAtt"][0]: m for m in all_modules()}
    posters = set(streaming.PUBLISHERS) | {"ws_disconnect", "ws_subscribe"}
    for role_id, module in {**module_roles, **ws_roles}.items():
        grants = _manage_grants(variant, role_id)
        if module not in posters:
            assert grants == [], module
            continue
        (grant,) = grants
        assert h.as_list(grant["Action"]) == [MANAGE], module
        (resource,) = h.as_list(grant["Resource"])
        parts = resource["Fn::Join"][1]
        # arn:<partition>:execute-api:<region>:<account>:<this api>/live/*/@connections/*
        assert {"Ref": api_id} in parts, module
        assert parts[-1] == f"/{streaming.STAGE}/*/@connections/*", module
    for module in streaming.PUBLISHERS:
        env = h.environment(variant, module)
        assert env["OUTPUT_SUBSCRIBERS_TABLE"] == {"Ref": table_id}, module
        assert "OUTPUT_PUSH_ENDPOINT" in env, module
        assert h.actions_on(variant, module, table_id) >= {"dynamodb:Query", "dynamodb:DeleteItem"}, module


def test_websocket_api_lives_with_its_publishers(synthesized: Synthesized) -> None:
    """In the Launch stack, next to the callbacks that publish: no nested stack references another for it."""
    launch = synthesized.stack.nested_stacks["Launch"]
    live = synthesized.stack.live_output
    assert h.nested_stack_of(synthesized, live.api) is launch
    for module in streaming.PUBLISHERS:
        assert h.nested_stack_of(synthesized, synthesized.stack.functions.by_module[module]) is launch

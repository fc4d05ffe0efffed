"""Template helpers shared by the infra tests: find resources, follow references, collect IAM grants."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sandboxcp.routes import all_modules
from tests.infra.conftest import Synthesized


def of_type(synth: Synthesized, cfn_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in synth.resources.items() if r["Type"] == cfn_type}


def refs(value: Any) -> set[str]:
    """Logical ids a template fragment references through Ref or Fn::GetAtt."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value:
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        for item in value.values():
            found |= refs(item)
    elif isinstance(value, list):
        for item in value:
            found |= refs(item)
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_ids(synth: Synthesized) -> dict[str, str]:
    """module -> logical id of the Lambda function whose handler is `<module>.handler`."""
    by_handler = {
        r["Properties"].get("Handler"): lid for lid, r in of_type(synth, "AWS::Lambda::Function").items()
    }
    return {m: by_handler[f"{m}.handler"] for m in all_modules()}


def alias_ids(synth: Synthesized) -> dict[str, str]:
    """module -> logical id of the function's `live` alias (SnapStart functions only)."""
    by_function = {
        next(iter(refs(r["Properties"]["FunctionName"]))): lid
        for lid, r in of_type(synth, "AWS::Lambda::Alias").items()
        if r["Properties"]["Name"] == "live"
    }
    return {m: by_function[f] for m, f in function_ids(synth).items() if f in by_function}


def entry_point_ids(synth: Synthesized) -> dict[str, str]:
    """module -> logical id of what its invokers invoke: the `live` alias of a SnapStart function, the
    function itself otherwise."""
    return {**function_ids(synth), **alias_ids(synth)}


def function(synth: Synthesized, module: str) -> dict[str, Any]:
    return synth.resources[function_ids(synth)[module]]


def statements(synth: Synthesized, module: str) -> Iterator[dict[str, Any]]:
    """Every policy statement attached to the module's function role."""
    role_id = function(synth, module)["Properties"]["Role"]["Fn::GetAtt"][0]
    for policy in of_type(synth, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            yield from policy["Properties"]["PolicyDocument"]["Statement"]
    yield from (
        s
        for p in synth.resources[role_id]["Properties"].get("Policies", [])
        for s in p["PolicyDocument"]["Statement"]
    )


def actions_on(synth: Synthesized, module: str, logical_id: str) -> set[str]:
    """Actions the module's function is allowed on the resource with this logical id (or its sub-ARNs)."""
    actions: set[str] = set()
    for statement in statements(synth, module):
        if statement["Effect"] == "Allow" and logical_id in refs(statement["Resource"]):
            actions |= set(as_list(statement["Action"]))
    return actions


def table_ids(synth: Synthesized) -> dict[str, str]:
    return {name: synth.logical_id(table) for name, table in synth.stack.data.tables.items()}


def methods(synth: Synthesized, api: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(HTTP method, resource path) -> Method properties, for one RestApi, paths rebuilt from the template."""
    api_id = synth.logical_id(api.rest_api)
    resources = of_type(synth, "AWS::ApiGateway::Resource")

    def path_of(resource_id: str) -> str:
        props = resources[resource_id]["Properties"]
        parent = props["ParentId"]
        prefix = "" if "Fn::GetAtt" in parent else path_of(parent["Ref"])
        return f"{prefix}/{props['PathPart']}"

    methods = {}
    for method in of_type(synth, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        if props["RestApiId"] == {"Ref": api_id}:
            methods[(props["HttpMethod"], path_of(props["ResourceId"]["Ref"]))] = props
    return methods


def authorizer(synth: Synthesized, api: Any) -> tuple[str, dict[str, Any]]:
    api_id = synth.logical_id(api.rest_api)
    (found,) = [
        (lid, r["Properties"])
        for lid, r in of_type(synth, "AWS::ApiGateway::Authorizer").items()
        if r["Properties"]["RestApiId"] == {"Ref": api_id}
    ]
    return found


def environment(synth: Synthesized, module: str) -> dict[str, Any]:
    env: dict[str, Any] = function(synth, module)["Properties"]["Environment"]["Variables"]
    return env


def grants(synth: Synthesized, module: str) -> set[tuple[str, str, str]]:
    """The module's allowed (action, resource, condition) triples, resource and condition as JSON text:
    comparable however CDK merged or split the statements."""
    found: set[tuple[str, str, str]] = set()
    for statement in statements(synth, module):
        if statement["Effect"] != "Allow":
            continue
        condition = json.dumps(statement.get("Condition", {}), sort_keys=True)
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                found.add((action, json.dumps(resource, sort_keys=True), condition))
    return found


def triple(action: str, resource: Any, condition: dict[str, Any] | None = None) -> tuple[str, str, str]:
    return (action, json.dumps(resource, sort_keys=True), json.dumps(condition or {}, sort_keys=True))


def modules_with(synth: Synthesized, access: str) -> list[str]:
    return [m for m, spec in synth.stack.functions.specs.items() if access in spec.access]


def nested_stack_of(synth: Synthesized, construct: Any) -> Any:
    """The nested stack holding `construct`, or None when it is in the parent stack."""
    from aws_cdk import NestedStack, Stack

    stack = Stack.of(construct)
    return stack if NestedStack.is_nested_stack(stack) else None


def nested_stack_resource_id(synth: Synthesized, nested: Any) -> str:
    """Logical id of a nested stack's AWS::CloudFormation::Stack resource in the parent template."""
    return str(synth.stack.resolve(nested.nested_stack_resource.logical_id))

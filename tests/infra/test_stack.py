"""The synthesized stack against its sources: the route table, the pynamodb models and the launch ASL.

One synth per session (conftest.synthesized); each test reads the template JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from packaging.requirements import Requirement

from sandboxcp.adapters.tables import TABLES
from sandboxcp.routes import AUTHORIZERS, LAUNCH_STEPS, ROUTES, Job, Route, all_modules
from sandboxcp_infra.functions import VPC_ACCESS_ACTIONS
from tests.infra import helpers as h
from tests.infra.conftest import INFRA_DIR, REPO_ROOT, Synthesized, cdk_context

DYNAMODB_WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}
TASK_RESPONSES = {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


# --- functions ----------------------------------------------------------------------------------------------


def test_one_function_per_module(synth_template: Template, synthesized: Synthesized) -> None:
    for module in all_modules():
        synth_template.resource_properties_count_is(
            "AWS::Lambda::Function", Match.object_like({"Handler": f"{module}.handler"}), 1
        )
    module_handlers = {f"{m}.handler" for m in all_modules()}
    functions = [r["Properties"] for r in h.of_type(synthesized, "AWS::Lambda::Function").values()]
    ours = [f for f in functions if f.get("Handler") in module_handlers]
    helpers = [f for f in functions if f.get("Handler") not in module_handlers]
    assert len(ours) == len(all_modules())
    # Besides the live-output WebSocket API's own functions (test_streaming.py), whatever else CDK adds (the
    # trigger's provider) is its own Node.js helper, not a Python module of ours.
    ws_handlers = {f"{m}.handler" for m in ("ws_authorizer", "ws_connect", "ws_disconnect", "ws_subscribe")}
    assert sorted(f["Handler"] for f in helpers if f.get("Handler") in ws_handlers) == sorted(ws_handlers)
    others = [f for f in helpers if f.get("Handler") not in ws_handlers]
    assert all(f["Runtime"].startswith("nodejs") for f in others), others


def test_every_function_runtime_tracing_layers_logs(synthesized: Synthesized) -> None:
    log_groups = h.of_type(synthesized, "AWS::Logs::LogGroup")
    layer_ids = set(h.of_type(synthesized, "AWS::Lambda::LayerVersion"))
    seen_log_groups = set()
    for module in all_modules():
        props = h.function(synthesized, module)["Properties"]
        assert props["Runtime"] == "python3.12", module
        assert props["Architectures"] == ["arm64"], module
        assert props["TracingConfig"] == {"Mode": "Active"}, module
        assert {layer["Ref"] for layer in props["Layers"]} == layer_ids, module
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert log_groups[log_group]["Properties"]["RetentionInDays"] == 30, module
        seen_log_groups.add(log_group)
    assert len(seen_log_groups) == len(all_modules()), "each function logs to its own group"


def test_timeouts_come_from_the_route_table(synthesized: Synthesized) -> None:
    entries: list[Route | Job] = [*ROUTES, *AUTHORIZERS.values(), *LAUNCH_STEPS.values()]
    for entry in entries:
        assert h.function(synthesized, entry.module)["Properties"]["Timeout"] == entry.timeout_s, entry.module


def test_every_function_gets_tables_bucket_and_runtime(synthesized: Synthesized) -> None:
    table_ids = h.table_ids(synthesized)
    bucket_id = synthesized.logical_id(synthesized.stack.storage.bucket)
    expected = {
        "SESSIONS_TABLE": {"Ref": table_ids["sessions"]},
        "EXECUTIONS_TABLE": {"Ref": table_ids["executions"]},
        "TEMPLATES_TABLE": {"Ref": table_ids["templates"]},
        "API_KEYS_TABLE": {"Ref": table_ids["api_keys"]},
        "IDEMPOTENCY_TABLE": {"Ref": table_ids["idempotency"]},
        "RUNTIME_NODES_TABLE": {"Ref": table_ids["runtime_nodes"]},
        "WORKSPACE_BUCKET": {"Ref": bucket_id},
        "SANDBOX_RUNTIME": "ecs",
        "POWERTOOLS_SERVICE_NAME": "sandboxcp",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",  # no entry-point scan on a cold start
    }
    for module in all_modules():
        env = h.function(synthesized, module)["Properties"]["Environment"]["Variables"]
        assert expected.items() <= env.items(), module


def test_state_machine_arn_only_where_launch_start(synthesized: Synthesized) -> None:
    sm_id = synthesized.logical_id(synthesized.stack.workflow.state_machine)
    starters = synthesized.stack.functions.modules_with("launch:start")
    assert starters == ["sessions_create"]
    for module in all_modules():
        env = h.function(synthesized, module)["Properties"]["Environment"]["Variables"]
        if module in starters:
            assert env["LAUNCH_STATE_MACHINE_ARN"] == {"Ref": sm_id}
        else:
            assert "LAUNCH_STATE_MACHINE_ARN" not in env, module


def test_start_sandbox_gets_the_internal_api_as_callback_url(synthesized: Synthesized) -> None:
    internal_api_id = synthesized.logical_id(synthesized.stack.internal_api.rest_api)
    start = LAUNCH_STEPS["StartSandboxFunctionArn"].module
    endpoint_id = synthesized.logical_id(synthesized.stack.network.execute_api_endpoint)
    url = h.function(synthesized, start)["Properties"]["Environment"]["Variables"]["CALLBACK_BASE_URL"]
    # The private API's endpoint-specific host: https://<api id>-<vpce id>.execute-api.<region>.<suffix>/prod
    assert h.refs(url) == {internal_api_id, endpoint_id, "AWS::Region", "AWS::URLSuffix"}
    assert url["Fn::Join"][1][:4] == ["https://", {"Ref": internal_api_id}, "-", {"Ref": endpoint_id}]
    assert url["Fn::Join"][1][-1] == "/prod"


# --- data ---------------------------------------------------------------------------------------------------


def _key_schema(keys: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    return sorted(
        ({"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in keys),
        key=lambda k: k["KeyType"],
    )


@pytest.mark.parametrize("name", list(TABLES))
def test_tables_match_the_models(synthesized: Synthesized, name: str) -> None:
    model = TABLES[name][0]
    schema: dict[str, Any] = dict(model._get_schema())  # plain JSON-like dicts from here on
    props = synthesized.resources[h.table_ids(synthesized)[name]]["Properties"]

    assert props["KeySchema"] == _key_schema(schema["key_schema"])
    assert sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        schema["attribute_definitions"], key=lambda a: a["AttributeName"]
    )
    expected_gsis = {
        i["index_name"]: (_key_schema(i["key_schema"]), i["projection"]["ProjectionType"])
        for i in schema["global_secondary_indexes"]
    }
    deployed_gsis = {
        i["IndexName"]: (i["KeySchema"], i["Projection"]["ProjectionType"])
        for i in props.get("GlobalSecondaryIndexes", [])
    }
    assert deployed_gsis == expected_gsis
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_idempotency_table_has_ttl(synthesized: Synthesized) -> None:
    props = synthesized.resources[h.table_ids(synthesized)["idempotency"]]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_data_is_retained_on_update_and_delete_not_after_a_failed_create(synthesized: Synthesized) -> None:
    """RetainExceptOnCreate: a failed first deploy rolls back without leaving tables or buckets behind
    (deletion protection would block that rollback, so it is off); later deletes and replacements keep
    the data."""
    retained = [synthesized.resources[h.table_ids(synthesized)[name]] for name in TABLES] + [
        synthesized.resources[synthesized.logical_id(bucket)]
        for bucket in (synthesized.stack.storage.bucket, synthesized.stack.storage.access_logs)
    ]
    for resource in retained:
        assert resource["DeletionPolicy"] == "RetainExceptOnCreate"
        assert resource["UpdateReplacePolicy"] == "Retain"
        assert not resource["Properties"].get("DeletionProtectionEnabled")
    for resource in synthesized.resources.values():  # nothing else outlives a failed create
        assert resource.get("DeletionPolicy") in (None, "Delete", "RetainExceptOnCreate"), resource["Type"]


# --- storage ------------------------------------------------------------------------------------------------


def test_workspace_bucket_private_encrypted_ssl_only(synthesized: Synthesized) -> None:
    bucket_id = synthesized.logical_id(synthesized.stack.storage.bucket)
    props = synthesized.resources[bucket_id]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["LoggingConfiguration"]["DestinationBucketName"]

    (policy,) = [
        p["Properties"]
        for p in h.of_type(synthesized, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }.items() <= policy["PolicyDocument"]["Statement"][0].items()


def test_workspace_bucket_lifecycle(synthesized: Synthesized) -> None:
    props = synthesized.resources[synthesized.logical_id(synthesized.stack.storage.bucket)]["Properties"]
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    assert rules["expire-results"]["Prefix"] == "results/"
    assert rules["expire-results"]["ExpirationInDays"] > 0
    expired = rules["expire-terminated-workspaces"]
    assert expired["Prefix"] == "workspace/"
    assert expired["TagFilters"] == [{"Key": "sandboxcp-expire", "Value": "true"}]
    assert expired["ExpirationInDays"] == 1  # the design keeps a terminated session's workspace 24 h


# --- APIs ---------------------------------------------------------------------------------------------------


def _assert_api_serves(synth: Synthesized, api: Any, api_kind: str, authorizer_module: str) -> None:
    routes = [r for r in ROUTES if r.api == api_kind]
    methods = h.methods(synth, api)
    assert set(methods) == {(r.method, r.path) for r in routes}

    authorizer_id, authorizer = h.authorizer(synth, api)
    assert authorizer["Type"] == "REQUEST"
    assert authorizer["IdentitySource"] == "method.request.header.Authorization"
    assert authorizer["AuthorizerResultTtlInSeconds"] == 0
    # API Gateway invokes the SnapStart alias (sandboxcp_infra.functions.LIVE_ALIAS), never $LATEST.
    entry_points = h.entry_point_ids(synth)
    assert entry_points[authorizer_module] in h.refs(authorizer["AuthorizerUri"])
    assert authorizer_module in h.alias_ids(synth)

    for route in routes:
        method = methods[(route.method, route.path)]
        assert h.refs(method["Integration"]["Uri"]) & set(h.function_ids(synth).values()) == set()
        assert entry_points[route.module] in h.refs(method["Integration"]["Uri"]), route.module
        assert method["Integration"]["Type"] == "AWS_PROXY"
        if route.auth == "none":
            assert method["AuthorizationType"] == "NONE", route.path
            assert "AuthorizerId" not in method
        else:
            assert method["AuthorizationType"] == "CUSTOM", route.path
            assert method["AuthorizerId"] == {"Ref": authorizer_id}, route.path


def test_public_api_has_a_method_per_public_route(synthesized: Synthesized) -> None:
    _assert_api_serves(synthesized, synthesized.stack.public_api, "public", AUTHORIZERS["api_key"].module)
    methods = h.methods(synthesized, synthesized.stack.public_api)
    assert methods[("GET", "/api/v1/health")]["AuthorizationType"] == "NONE"
    assert methods[("POST", "/api/v1/keys")]["AuthorizationType"] == "CUSTOM"  # admin: same authorizer


def test_internal_api_has_a_method_per_internal_route(synthesized: Synthesized) -> None:
    _assert_api_serves(
        synthesized, synthesized.stack.internal_api, "internal", AUTHORIZERS["callback"].module
    )


def test_api_stages_log_trace_and_throttle(synthesized: Synthesized) -> None:
    stages = h.of_type(synthesized, "AWS::ApiGateway::Stage")
    assert len(stages) == 2
    for stage in stages.values():
        props = stage["Properties"]
        assert props["TracingEnabled"] is True
        assert props["AccessLogSetting"]["DestinationArn"]
        (settings,) = props["MethodSettings"]
        assert settings["LoggingLevel"] == "ERROR"
        assert settings["DataTraceEnabled"] is False
        assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
    assert len(h.of_type(synthesized, "AWS::ApiGateway::Account")) == 1


# --- workflow -----------------------------------------------------------------------------------------------


def test_state_machine_runs_the_launch_asl(synthesized: Synthesized) -> None:
    sm_id = synthesized.logical_id(synthesized.stack.workflow.state_machine)
    props = synthesized.resources[sm_id]["Properties"]
    definition = json.loads((INFRA_DIR / "statemachines" / "launch_session.asl.json").read_text())
    # DefinitionBody.from_file ships the ASL as an S3 asset: the very file local mode runs.
    asset = synthesized.outdir / f"asset.{props['DefinitionS3Location']['Key']}"
    assert json.loads(asset.read_text()) == definition
    states = definition["States"]
    assert {"PlaceSession", "StartSandbox", "MarkLaunchFailed"} <= states.keys()
    assert states["StartSandbox"]["Resource"].endswith("lambda:invoke.waitForTaskToken")

    # Each step through its SnapStart alias (a Ref to an alias is its ARN).
    aliases = h.alias_ids(synthesized)
    assert props["DefinitionSubstitutions"] == {
        variable: {"Ref": aliases[job.module]} for variable, job in LAUNCH_STEPS.items()
    }
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False


def test_state_machine_invokes_exactly_its_steps(synthesized: Synthesized) -> None:
    sm_id = synthesized.logical_id(synthesized.stack.workflow.state_machine)
    role_id = synthesized.resources[sm_id]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    invokes = [
        s
        for p in h.of_type(synthesized, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in h.as_list(s["Action"])
    ]
    (statement,) = invokes
    aliases = h.alias_ids(synthesized)
    # Exactly the steps' `live` aliases (the ARNs the ASL invokes): no `<arn>:*` granting every version and
    # alias, no unqualified ARN invoking $LATEST.
    assert all(set(r) == {"Ref"} for r in statement["Resource"])
    assert h.refs(statement["Resource"]) == {aliases[job.module] for job in LAUNCH_STEPS.values()}


def test_seed_trigger_invokes_seed_templates_after_the_tables(synthesized: Synthesized) -> None:
    ((trigger_id, trigger),) = h.of_type(synthesized, "Custom::Trigger").items()
    seed_function = h.function_ids(synthesized)["seed_templates"]
    (version_id,) = h.refs(trigger["Properties"]["HandlerArn"])
    version = synthesized.resources[version_id]
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == {"Ref": seed_function}
    # The tables are in the parent stack: the trigger's own (nested) stack is created after all of them.
    trigger_stack = synthesized.stack.nested_stacks["Jobs"]
    assert trigger_id in synthesized.templates[trigger_stack.node.path]["Resources"]
    stack_resource = synthesized.resources[h.nested_stack_resource_id(synthesized, trigger_stack)]
    assert set(h.table_ids(synthesized).values()) <= set(stack_resource["DependsOn"])


def test_outputs(synthesized: Synthesized) -> None:
    outputs = synthesized.outputs
    assert {
        "PublicApiUrl",
        "InternalApiUrl",
        "WorkspaceBucketName",
        "LaunchStateMachineArn",
        "ApiKeysTableName",
    } <= outputs.keys()
    assert synthesized.logical_id(synthesized.stack.public_api.rest_api) in h.refs(outputs["PublicApiUrl"])
    assert synthesized.logical_id(synthesized.stack.internal_api.rest_api) in h.refs(
        outputs["InternalApiUrl"]
    )


# --- least privilege ----------------------------------------------------------------------------------------


def test_sessions_get_reads_sessions_only(synthesized: Synthesized) -> None:
    tables = h.table_ids(synthesized)
    on_sessions = h.actions_on(synthesized, "sessions_get", tables["sessions"])
    assert "dynamodb:GetItem" in on_sessions and "dynamodb:Query" in on_sessions
    assert not on_sessions & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert h.actions_on(synthesized, "sessions_get", tables["api_keys"]) == set()


def test_callback_authorizer_cannot_read_api_keys(synthesized: Synthesized) -> None:
    tables = h.table_ids(synthesized)
    assert h.actions_on(synthesized, "authorizer_callback", tables["api_keys"]) == set()
    assert "dynamodb:GetItem" in h.actions_on(synthesized, "authorizer_api_key", tables["api_keys"])


def test_table_grants_follow_the_access_lists(synthesized: Synthesized) -> None:
    tables = h.table_ids(synthesized)
    for module, spec in synthesized.stack.functions.specs.items():
        for name, table_id in tables.items():
            actions = h.actions_on(synthesized, module, table_id)
            if f"{name}:rw" in spec.access:
                assert actions >= DYNAMODB_WRITES, (module, name)
            elif f"{name}:r" in spec.access:
                assert "dynamodb:GetItem" in actions and not actions & DYNAMODB_WRITES, (module, name)
            else:
                assert actions == set(), (module, name)


def test_only_launch_start_functions_can_start_executions(synthesized: Synthesized) -> None:
    starters = set(synthesized.stack.functions.modules_with("launch:start"))
    callers = set(synthesized.stack.functions.modules_with("launch:callback"))
    assert starters and callers
    for module in all_modules():
        actions = {a for s in h.statements(synthesized, module) for a in h.as_list(s["Action"])}
        assert ("states:StartExecution" in actions) == (module in starters), module
        assert bool(actions & TASK_RESPONSES) == (module in callers), module


def test_wildcard_resources_carry_only_actions_without_resource_scoping(variant: Synthesized) -> None:
    """Guards the AwsSolutions-IAM5[Resource::*] acknowledgment on the function roles: X-Ray for all, Lambda's
    ENI calls for VPC functions, and on ECS the two runtime calls IAM cannot scope to a resource."""
    in_vpc = set(variant.stack.network_modules)
    for module in all_modules():
        allowed = set(XRAY_ACTIONS)
        if module in in_vpc:
            allowed |= set(VPC_ACCESS_ACTIONS)
        if variant.variant == "ecs" and module in h.modules_with(variant, "runtime"):
            allowed |= {"ecs:DescribeTaskDefinition", "ecs:ListTasks", "ecs:RegisterTaskDefinition"}
        for statement in h.statements(variant, module):
            if statement["Resource"] == "*":
                assert set(h.as_list(statement["Action"])) <= allowed, module


def test_function_roles_use_no_managed_policies(synthesized: Synthesized) -> None:
    for module in all_modules():
        role_id = h.function(synthesized, module)["Properties"]["Role"]["Fn::GetAtt"][0]
        assert "ManagedPolicyArns" not in synthesized.resources[role_id]["Properties"], module


def test_unknown_access_string_fails() -> None:
    from types import SimpleNamespace

    from sandboxcp_infra.grants import AccessGrants

    tables = dict.fromkeys([*TABLES, "idempotency"])
    grants = AccessGrants(tables=tables, bucket=None, launch_state_machine=None, runtime=None)  # type: ignore[arg-type]
    function = SimpleNamespace(node=SimpleNamespace(path="Stack/Functions/X"))
    with pytest.raises(ValueError, match="unknown access 'sessions:admin'") as raised:
        grants.apply(function, ["sessions:admin"])  # type: ignore[arg-type]
    assert "runtime_nodes:r|rw" in str(raised.value)  # every table, runtime_nodes included, has r and rw


# --- checks on the whole template ---------------------------------------------------------------------------


def test_cdk_nag_reports_nothing_unacknowledged(variant: Synthesized) -> None:
    report_path = variant.outdir / "validation-report.json"
    reports = json.loads(report_path.read_text()).get("pluginReports", []) if report_path.exists() else []
    violations = [v["ruleName"] for r in reports for v in r.get("violations", [])]
    assert violations == []


def test_cfn_lint_finds_no_errors(variant: Synthesized) -> None:
    from cfnlint.api import ManualArgs, lint

    assert len(variant.template_paths) > 1, "expected the parent stack and its nested stacks"
    errors = []
    for path in variant.template_paths.values():
        # W3005: CDK's own redundant DependsOn next to a GetAtt; harmless and not ours to change.
        matches = lint(path.read_text(), config=ManualArgs(regions=["us-east-1"], ignore_checks=["W3005"]))
        errors += [f"{path.name}: {m}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


MAX_RESOURCES_PER_STACK = 300  # of CloudFormation's 500: room for the roadmap's routes (about 7 each)


def test_no_stack_above_300_resources(variant: Synthesized) -> None:
    counts = {path: len(t["Resources"]) for path, t in variant.templates.items()}
    assert all(count <= MAX_RESOURCES_PER_STACK for count in counts.values()), counts
    assert sum(counts.values()) == len(variant.resources)


def test_functions_sit_in_the_nested_stack_of_their_group(synthesized: Synthesized) -> None:
    """The split the stack documents: the public routes' functions, the public API's authorizer with the
    API, the launch steps and internal routes with the internal API, the jobs with their schedules."""
    nested = synthesized.stack.nested_stacks
    home = {"public": "ApiFunctions", "public_auth": "Api", "launch": "Launch", "jobs": "Jobs"}
    for module, spec in synthesized.stack.functions.specs.items():
        function = synthesized.stack.functions.by_module[module]
        assert h.nested_stack_of(synthesized, function) is nested[home[spec.group]], module
    for construct, name in (
        (synthesized.stack.public_api.rest_api, "Api"),
        (synthesized.stack.internal_api.rest_api, "Launch"),
        (synthesized.stack.workflow.state_machine, "Launch"),
        (synthesized.stack.schedules.dead_letter_queue, "Jobs"),
        (synthesized.stack.monitoring.topic, "Monitoring"),
    ):
        assert h.nested_stack_of(synthesized, construct) is nested[name]
    for construct in (synthesized.stack.data, synthesized.stack.storage, synthesized.stack.network.vpc):
        assert h.nested_stack_of(synthesized, construct) is None


def test_no_acknowledgment_is_stack_wide(variant: Synthesized) -> None:
    """cdk-nag acknowledgments sit on the resource they excuse (or its construct), never on a stack or the
    app, where they would excuse everything below. (CDK's own CloudFormation-Validate plugin acknowledges
    some of its rules per stack by itself; only cdk-nag's AwsSolutions findings are ours to place.)"""
    from aws_cdk import Stack, Validations

    scopes = [variant.stack.node.root, *variant.stack.node.find_all()]
    stack_wide = [
        (scope.node.path or "<app>", rule)
        for scope in scopes
        if isinstance(scope, Stack) or scope is variant.stack.node.root
        for entry in scope.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule in entry.data
        if "AwsSolutions" in rule
    ]
    assert stack_wide == []
    with pytest.raises(ValueError, match="not on"):
        from sandboxcp_infra.nag import acknowledge

        acknowledge(variant.stack.nested_stacks["Api"], "AwsSolutions-IAM5[Resource::*]", "nope")


def test_layer_requirements_match_pyproject() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    wanted = {Requirement(r).name.lower(): Requirement(r) for r in pyproject["project"]["dependencies"]}
    lines = (INFRA_DIR / "sandboxcp_infra" / "dependencies" / "requirements.txt").read_text().splitlines()
    pinned = {
        Requirement(line).name.lower(): Requirement(line)
        for line in lines
        if line and not line.startswith("#")
    }
    assert wanted.keys() <= pinned.keys()
    for name, requirement in wanted.items():
        (spec,) = pinned[name].specifier
        assert spec.operator == "==", f"{name} is not pinned in the layer"
        assert requirement.specifier.contains(spec.version), (
            f"layer pins {name}=={spec.version}; pyproject wants {requirement}"
        )
        assert requirement.extras <= pinned[name].extras, name


def test_bogus_runtime_fails_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(cdk_context(runtime="bogus")),
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [sys.executable, str(INFRA_DIR / "app.py")],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "context 'runtime' is 'bogus'; allowed: ecs, eks, docker" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="session")
def synth_template(synthesized: Synthesized) -> Template:
    return Template.from_json({"Resources": synthesized.resources})


def test_warm_pool_context_is_validated_and_passed_to_the_functions(synthesized: Synthesized) -> None:
    from aws_cdk import App

    from sandboxcp.services.warm_pool import DEFAULT_POOLS
    from sandboxcp_infra.config import ConfigError, DeploymentConfig

    def deployed(value: str | None) -> str:
        return DeploymentConfig.from_context(App(context=cdk_context(warm_pool=value)).node).warm_pool

    # Never the seed's 35 warm sandboxes silently: without the flag, no pool; the seed's sizes by name only.
    assert deployed(None) == "none"
    assert deployed("") == "none"
    assert deployed("NONE") == "none"
    assert deployed("seed") == DEFAULT_POOLS
    assert deployed("python-basic=3, nodejs-basic=1") == "python-basic=3,nodejs-basic=1"
    assert deployed("python-basic=2:8,nodejs-basic=0") == "python-basic=2:8,nodejs-basic=0"
    assert deployed("python-datascience=50:100") == "python-datascience=50:100"
    for bad in (
        "python-basic=lots",
        "python-basic=8:2",  # ceiling below floor
        "python-basic=2:",
        "python-basic=51",  # above the adapter's MAX_FLOOR
        "python-basic=1:101",  # above MAX_CEILING
        "seed,python-basic=1",
        "python-basic=1,python-basic=2",
        "=3",
    ):
        with pytest.raises(ConfigError, match="warm_pool"):
            deployed(bad)
    # cdk.json sets no warm_pool: every function is deployed with "none".
    functions = h.of_type(synthesized, "AWS::Lambda::Function")
    envs = [f["Properties"].get("Environment", {}).get("Variables", {}) for f in functions.values()]
    ours = [env for env in envs if "SESSIONS_TABLE" in env]
    assert ours and all(env["SANDBOX_WARM_POOL"] == "none" for env in ours)


def test_a_template_synthesized_without_bundling_cannot_be_deployed(synthesized: Synthesized) -> None:
    """The tests synthesize without bundling (no pip install): CloudFormation must refuse that template
    before creating anything (a rule that never holds), rather than deploy functions that cannot import."""
    rule = synthesized.template["Rules"]["RefuseUnbundledTemplate"]
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Equals": ["bundled", "not bundled"]}
    assert "bundling" in assertion["AssertDescription"]


def test_sessions_and_executions_expire_through_ttl(synthesized: Synthesized) -> None:
    """The code sets `expires_at` (epoch seconds) when a session or execution ends; DynamoDB deletes it."""
    for name in ("sessions", "executions"):
        props = synthesized.resources[h.table_ids(synthesized)[name]]["Properties"]
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}, name
    for name, (model, _) in TABLES.items():  # and only where the model has the attribute
        props = synthesized.resources[h.table_ids(synthesized)[name]]["Properties"]
        assert ("TimeToLiveSpecification" in props) == ("expires_at" in model.get_attributes()), name


def test_execution_results_expire_after_30_days(synthesized: Synthesized) -> None:
    props = synthesized.resources[synthesized.logical_id(synthesized.stack.storage.bucket)]["Properties"]
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert (rules["expire-results"]["Prefix"], rules["expire-results"]["ExpirationInDays"]) == (
        "results/",
        30,
    )


def test_public_api_waf_is_off_by_default_and_acknowledged_on_the_stage(synthesized: Synthesized) -> None:
    from aws_cdk import Validations

    assert h.of_type(synthesized, "AWS::WAFv2::WebACL") == {}
    assert synthesized.stack.public_api.web_acl is None
    stage = synthesized.stack.public_api.rest_api.deployment_stage
    acknowledged = [
        rule
        for entry in stage.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule in entry.data
    ]
    assert any(rule.endswith("AwsSolutions-APIG3") for rule in acknowledged), acknowledged


def test_waf_flag_puts_a_rate_based_rule_per_ip_on_the_public_stage() -> None:
    """`-c waf=true` (config) builds waf.PublicApiFirewall on the public API's deployment stage."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_apigateway as apigw

    from sandboxcp_infra.config import DeploymentConfig
    from sandboxcp_infra.waf import RATE_LIMIT_PER_IP, PublicApiFirewall

    assert DeploymentConfig.from_context(App(context=cdk_context(waf="true")).node).waf is True
    assert DeploymentConfig.from_context(App(context=cdk_context()).node).waf is False
    stack = Stack(App(), "WafProbe")
    api = apigw.RestApi(stack, "Api")
    api.root.add_method("GET", apigw.MockIntegration())
    PublicApiFirewall(stack, "Firewall", stage=api.deployment_stage)
    template = Template.from_stack(stack).to_json()
    (acl,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::WAFv2::WebACL"]
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    (rule,) = acl["Rules"]
    assert rule["Action"] == {"Block": {}}
    assert rule["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "Limit": RATE_LIMIT_PER_IP,
        "EvaluationWindowSec": 300,
    }
    (association,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::WAFv2::WebACLAssociation"
    ]
    stage_id = stack.resolve(api.deployment_stage.node.default_child.logical_id)  # type: ignore[union-attr]
    assert stage_id in h.refs(association["ResourceArn"])

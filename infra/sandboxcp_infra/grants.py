"""Least privilege from the route table: each access string on a route or job becomes the narrowest grant.

    <table>:r    grant_read_data   (sessions, executions, templates, api_keys, runtime_nodes, idempotency)
    <table>:rw   grant_read_write_data
    workspace:r  bucket.grant_read      workspace:rw  bucket.grant_read_write
    launch:start     states:StartExecution on the launch state machine (+ LAUNCH_STATE_MACHINE_ARN)
    launch:callback  states:SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat on it
    runtime          the deployment's sandbox runtime: its permissions and environment (runtime.py)

A function gets nothing its access list does not name, and an unknown access string fails the synth."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import CfnElement
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import IConstruct

from sandboxcp_infra.nag import acknowledge, reference_finding
from sandboxcp_infra.naming import env_var
from sandboxcp_infra.runtime import SandboxRuntime


class AccessGrants:
    def __init__(
        self,
        *,
        tables: dict[str, dynamodb.Table],
        bucket: s3.IBucket,
        launch_state_machine: sfn.IStateMachine,
        runtime: SandboxRuntime,
    ) -> None:
        self._tables = tables
        self._bucket = bucket
        self._state_machine = launch_state_machine
        self._runtime = runtime

    def apply(self, function: lambda_.Function, access: Iterable[str]) -> None:
        for item in access:
            self._grant(function, item)

    def _grant(self, function: lambda_.Function, item: str) -> None:
        resource, _, mode = item.partition(":")
        if resource in self._tables and mode in ("r", "rw"):
            self._grant_table(function, self._tables[resource], mode)
        elif resource == "workspace" and mode in ("r", "rw"):
            self._grant_workspace(function, mode)
        elif item == "launch:start":
            self._state_machine.grant_start_execution(function)
            function.add_environment(
                env_var("launch_state_machine_arn"), self._state_machine.state_machine_arn
            )
        elif item == "launch:callback":
            self._state_machine.grant_task_response(function)
        elif item == "runtime":
            self._runtime.grant(function)
            for implied in self._runtime.implied_access:
                self._grant(function, implied)
        else:
            tables = [f"{t}:r|rw" for t in self._tables]
            known = [*tables, "workspace:r|rw", "launch:start", "launch:callback", "runtime"]
            raise ValueError(
                f"{function.node.path}: unknown access {item!r} in sandboxcp.routes;"
                f" known: {', '.join(known)}"
            )

    def _grant_table(self, function: lambda_.Function, table: dynamodb.Table, mode: str) -> None:
        if mode == "r":
            table.grant_read_data(function)
        else:
            table.grant_read_write_data(function)
        # CDK grants a table's indexes as `<table arn>/index/*`: the wildcard covers only this table's GSIs,
        # which the list and reaper queries read. Acknowledged for exactly that resource string.
        table_arn = reference_finding(function, _cfn(table), "Arn")
        acknowledge(
            _policy_scope(function),
            f"AwsSolutions-IAM5[Resource::{table_arn}/index/*]",
            "Queries on this table's own global secondary indexes (lists and reapers never Scan).",
        )

    def _grant_workspace(self, function: lambda_.Function, mode: str) -> None:
        if mode == "r":
            self._bucket.grant_read(function)
        else:
            self._bucket.grant_read_write(function)
        bucket_arn = reference_finding(function, _cfn(self._bucket), "Arn")
        reason = (
            "Workspace objects are keyed by session id under workspace/ and results/; object-level grants "
            "on the workspace bucket need the bucket/* resource and S3's Get*/List*/Delete* action groups."
        )
        scope = _policy_scope(function)
        acknowledge(scope, f"AwsSolutions-IAM5[Resource::{bucket_arn}/*]", reason)
        for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"):
            acknowledge(scope, f"AwsSolutions-IAM5[Action::{action}]", reason)


def _cfn(construct: IConstruct) -> CfnElement:
    """The CloudFormation resource of an L2 construct, which cdk-nag names in findings."""
    cfn = construct.node.default_child
    if not isinstance(cfn, CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return cfn


def _policy_scope(function: lambda_.Function) -> iam.IRole:
    if function.role is None:
        raise ValueError(f"{function.node.path} has no role to grant to")
    return function.role

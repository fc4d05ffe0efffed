"""The launch state machine, from infra/statemachines/launch_session.asl.json: the same ASL local mode runs
on moto, with each `${...}` variable (a LAUNCH_STEPS key) replaced by the ARN of what invokes that step: its
SnapStart alias (sandboxcp_infra.functions.LIVE_ALIAS) in the stack."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from sandboxcp.routes import LAUNCH_STEPS
from sandboxcp_infra.nag import acknowledge

ASL_FILE = Path(__file__).resolve().parents[1] / "statemachines" / "launch_session.asl.json"


class LaunchWorkflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        steps = {variable: functions[job.module] for variable, job in LAUNCH_STEPS.items()}

        log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self,
            "LaunchSession",
            comment="Place a session, start its sandbox, wait for container_ready; on failure mark it failed",
            definition_body=sfn.DefinitionBody.from_file(str(ASL_FILE)),
            definition_substitutions={variable: fn.function_arn for variable, fn in steps.items()},
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group,
                level=sfn.LogLevel.ALL,
                # Inputs carry task tokens that complete the launch; keep them out of the logs.
                include_execution_data=False,
            ),
        )
        # Exactly the steps, by the ARN the ASL passes as FunctionName (a SnapStart function's alias ARN,
        # qualified); CDK's grant_invoke would add `<arn>:*` for every version and alias too.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[fn.function_arn for fn in steps.values()],
            )
        )
        acknowledge(
            self.state_machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery (logs:*LogDelivery, PutResourcePolicy, Describe*) and X-Ray tracing "
            "(xray:PutTraceSegments, GetSampling*) support no resource-level permissions.",
        )

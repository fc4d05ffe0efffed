"""The stack: composes a construct per concern and wires what crosses concerns (grants, env vars).

CloudFormation takes at most 500 resources per stack and every route adds about seven, so the concerns that
grow with the route table live in nested stacks (tests/infra keeps each under 300):

    SandboxControlPlane   data, workspace storage, network and sandbox runtime, layers, outputs
      Launch              launch workflow, internal API, their functions
      ApiFunctions        the public API's functions
      Api                 the public API, its authorizer (and its WAF web ACL)
      Jobs                periodic jobs, their schedules and sweepers, the seed trigger
      Monitoring          dashboard, alarms, alarm topic

Nested stacks read the parent's resources and each other's through parameters and outputs CDK adds; the
split follows the references (functions.GROUPS), so no two nested stacks need each other."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, CfnRule, CfnRuleAssertion, Fn, NestedStack, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from sandboxcp.routes import LAUNCH_STEPS
from sandboxcp_infra import streaming
from sandboxcp_infra.api import ApiGatewayLoggingRole, PublicApi
from sandboxcp_infra.config import DeploymentConfig
from sandboxcp_infra.data import DataTables
from sandboxcp_infra.functions import (
    JOBS_GROUP,
    LAUNCH,
    METRICS_NAMESPACE,
    PUBLIC,
    PUBLIC_AUTH,
    SERVICE_NAME,
    Functions,
    function_specs,
)
from sandboxcp_infra.grants import AccessGrants
from sandboxcp_infra.internal_api import InternalApi
from sandboxcp_infra.layers import SharedLayers
from sandboxcp_infra.monitoring import Monitoring
from sandboxcp_infra.naming import env_var
from sandboxcp_infra.network import Network, vpc_modules
from sandboxcp_infra.runtime import build_runtime
from sandboxcp_infra.schedules import Schedules
from sandboxcp_infra.seed import SeedTemplates
from sandboxcp_infra.storage import WorkspaceStorage
from sandboxcp_infra.workflow import LaunchWorkflow

SEED_MODULE = "seed_templates"  # a JOBS entry: fills the templates table
START_SANDBOX_MODULE = LAUNCH_STEPS["StartSandboxFunctionArn"].module


class SandboxControlPlaneStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.config = config
        if not self.bundling_required:
            # Synthesized without bundling (tests, `-c bundling=false`): the dependencies layer holds only
            # requirements.txt and every function would fail at import. CloudFormation checks rules before
            # it creates anything, so such a template is refused whole instead of rolling back half-made.
            CfnRule(
                self,
                "RefuseUnbundledTemplate",
                assertions=[
                    CfnRuleAssertion(
                        assert_=Fn.condition_equals("bundled", "not bundled"),
                        assert_description="This template was synthesized without bundling (its Lambda"
                        " layers lack their packages): synthesize it again without -c bundling=false",
                    )
                ],
            )
        self.data = data = DataTables(self, "Data", removal_policy=config.data_removal_policy)
        self.storage = storage = WorkspaceStorage(self, "Storage", removal_policy=config.data_removal_policy)
        self.network = network = Network(
            self,
            "Network",
            vpc_id=config.vpc_id,
            log_retention=config.log_retention,
            workspace_bucket=storage.bucket,
            flow_logs_removal=config.data_removal_policy,
        )
        self.runtime = runtime = build_runtime(self, config, network)
        # The functions that reach executors or drive the runtime run in the VPC; the rest stay outside it.
        specs = function_specs()
        self.network_modules = vpc_modules(specs)
        # Besides DynamoDB and S3 (gateway endpoints) and the runtime's own services, a VPC function may
        # need Step Functions: only if the route table gives one of them launch access.
        if any(a.startswith("launch:") for m in self.network_modules for a in specs[m].access):
            network.add_interface_endpoints(states=ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS)
        layers = SharedLayers(self, "Layers")
        logging_role = (
            ApiGatewayLoggingRole(self, "ApiGatewayLogging") if config.api_gateway_cloudwatch_role else None
        )

        self.nested_stacks = nested = {
            name: NestedStack(self, name, description=f"Sandbox Control Plane: {what}")
            for name, what in (
                ("Launch", "launch workflow, internal API and their functions"),
                ("ApiFunctions", "the public API's functions"),
                ("Api", "the public API and its authorizer"),
                ("Jobs", "periodic jobs, schedules, seed trigger"),
                ("Monitoring", "dashboard and alarms"),
            )
        }
        # Every function knows every table and the bucket; IAM, not configuration, limits what it touches.
        function_environment = {
            **data.environment,
            **storage.environment,
            env_var("runtime"): config.runtime,
            env_var("warm_pool"): config.warm_pool,
        }
        self.functions = functions = Functions(
            homes={
                LAUNCH: nested["Launch"],
                PUBLIC: nested["ApiFunctions"],
                PUBLIC_AUTH: nested["Api"],
                JOBS_GROUP: nested["Jobs"],
            },
            layers=layers.all,
            environment=function_environment,
            log_retention=config.log_retention,
            network=network,
            vpc_modules=self.network_modules,
        )
        by_module = functions.by_module
        # What API Gateway and Step Functions invoke: the SnapStart alias where there is one (functions.py).
        invoked = functions.entry_points

        self.workflow = workflow = LaunchWorkflow(
            nested["Launch"], "Workflow", functions=invoked, log_retention=config.log_retention
        )

        grants = AccessGrants(
            tables=data.tables,
            bucket=storage.bucket,
            launch_state_machine=workflow.state_machine,
            runtime=runtime,
        )
        for module, spec in functions.specs.items():
            grants.apply(by_module[module], spec.access)

        self.public_api = public_api = PublicApi(
            nested["Api"],
            "PublicApi",
            functions=invoked,
            log_retention=config.log_retention,
            logging_role=logging_role,
            waf=config.waf,
        )
        self.internal_api = internal_api = InternalApi(
            nested["Launch"],
            "InternalApi",
            functions=invoked,
            log_retention=config.log_retention,
            logging_role=logging_role,
            endpoint=network.execute_api_endpoint,
        )
        # The sandbox's executor calls back through the internal API. Added once both exist, and built from
        # the API id (not its stage): the internal API's own functions depend on the state machine, which
        # depends on this function.
        by_module[START_SANDBOX_MODULE].add_environment(env_var("callback_base_url"), internal_api.base_url)

        # The live-output WebSocket API (docs/streaming.md). In the Launch stack, next to its publishers (the
        # executor's output/result/status callbacks): they get its endpoint and the grant to post to its
        # connections, and the Api stack already depends on Launch (through ApiFunctions), so no other
        # nested stack could hold it without a cycle.
        self.live_output = live = streaming.LiveOutputStreaming(
            nested["Launch"],
            "LiveOutput",
            layers=layers.all,
            environment={
                **function_environment,
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            log_retention=config.log_retention,
            tables=data.tables,
            publishers={m: by_module[m] for m in streaming.PUBLISHERS},
            logging_dependency=logging_role.account if logging_role is not None else None,
        )

        SeedTemplates(nested["Jobs"], "SeedTemplates", handler=by_module[SEED_MODULE], after=[data])

        self.schedules = schedules = Schedules(
            nested["Jobs"], "Schedules", functions=by_module, log_retention=config.log_retention
        )
        self.monitoring = monitoring = Monitoring(
            nested["Monitoring"],
            "Monitoring",
            apis={"Public API": public_api.rest_api, "Internal API": internal_api.rest_api},
            public_api=public_api.rest_api,
            functions=by_module,
            launch=workflow.state_machine,
            schedules=schedules,
            alarm_email=config.alarm_email,
            runtime=config.runtime,
            internal_api=internal_api.rest_api,
            tables=data.tables,
        )

        CfnOutput(self, "PublicApiUrl", value=public_api.base_url, description="SANDBOXCP_URL for clients")
        CfnOutput(
            self, "InternalApiUrl", value=internal_api.base_url, description="Executor callback base URL"
        )
        CfnOutput(
            self, "LiveOutputUrl", value=live.url, description="Live output WebSocket (wss://, streaming.md)"
        )
        CfnOutput(self, "WorkspaceBucketName", value=storage.bucket.bucket_name)
        CfnOutput(self, "LaunchStateMachineArn", value=workflow.state_machine.state_machine_arn)
        # Where the first admin key goes (docs/deploy.md); later keys are issued through the API.
        CfnOutput(self, "ApiKeysTableName", value=data.tables["api_keys"].table_name)
        CfnOutput(self, "VpcId", value=network.vpc.vpc_id)
        CfnOutput(
            self,
            "FunctionsSecurityGroupId",
            value=network.functions_sg.security_group_id,
            description="Security group of the functions that reach sandboxes (allow it in to executors)",
        )
        CfnOutput(self, "AlarmTopicArn", value=monitoring.topic.topic_arn, description="Subscribe to alarms")
        for name, (value, description) in runtime.outputs.items():
            CfnOutput(self, name, value=value, description=description)

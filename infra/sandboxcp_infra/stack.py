"""The one stack: composes a construct per concern and wires what crosses concerns (grants, env vars)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from sandboxcp.routes import LAUNCH_STEPS
from sandboxcp_infra.api import ApiGatewayLoggingRole, PublicApi
from sandboxcp_infra.config import DeploymentConfig
from sandboxcp_infra.data import DataTables
from sandboxcp_infra.functions import Functions
from sandboxcp_infra.grants import AccessGrants
from sandboxcp_infra.internal_api import InternalApi
from sandboxcp_infra.layers import SharedLayers
from sandboxcp_infra.naming import env_var
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

        self.data = data = DataTables(self, "Data", removal_policy=config.data_removal_policy)
        self.storage = storage = WorkspaceStorage(self, "Storage", removal_policy=config.data_removal_policy)
        layers = SharedLayers(self, "Layers")
        self.functions = functions = Functions(
            self,
            "Functions",
            layers=layers.all,
            # Every function knows every table and the bucket; IAM, not configuration, limits what it touches.
            environment={**data.environment, **storage.environment, env_var("runtime"): config.runtime},
            log_retention=config.log_retention,
        )
        by_module = functions.by_module

        self.workflow = workflow = LaunchWorkflow(
            self, "Workflow", functions=by_module, log_retention=config.log_retention
        )

        grants = AccessGrants(
            tables=data.tables,
            bucket=storage.bucket,
            launch_state_machine=workflow.state_machine,
            runtime=config.runtime,
        )
        for module, spec in functions.specs.items():
            grants.apply(by_module[module], spec.access)

        logging_role = (
            ApiGatewayLoggingRole(self, "ApiGatewayLogging") if config.api_gateway_cloudwatch_role else None
        )
        self.public_api = public_api = PublicApi(
            self,
            "PublicApi",
            functions=by_module,
            log_retention=config.log_retention,
            logging_role=logging_role,
        )
        self.internal_api = internal_api = InternalApi(
            self,
            "InternalApi",
            functions=by_module,
            log_retention=config.log_retention,
            logging_role=logging_role,
        )
        # The sandbox's executor calls back through the internal API. Added once both exist, and built from
        # the API id (not its stage): the internal API's own functions depend on the state machine, which
        # depends on this function.
        by_module[START_SANDBOX_MODULE].add_environment(env_var("callback_base_url"), internal_api.base_url)

        SeedTemplates(self, "SeedTemplates", handler=by_module[SEED_MODULE], after=[data])

        CfnOutput(self, "PublicApiUrl", value=public_api.base_url, description="SANDBOXCP_URL for clients")
        CfnOutput(
            self, "InternalApiUrl", value=internal_api.base_url, description="Executor callback base URL"
        )
        CfnOutput(self, "WorkspaceBucketName", value=storage.bucket.bucket_name)
        CfnOutput(self, "LaunchStateMachineArn", value=workflow.state_machine.state_machine_arn)
        # Where the first admin key goes (docs/deploy.md); later keys are issued through the API.
        CfnOutput(self, "ApiKeysTableName", value=data.tables["api_keys"].table_name)

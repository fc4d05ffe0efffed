"""The internal API the in-sandbox executors call back (`/internal/...`): every route behind the callback
authorizer, which accepts a session's own callback token only. PRIVATE: reachable only through the VPC's
execute-api endpoint (network.py), since sandboxes have no route to the internet."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from sandboxcp.routes import AUTHORIZERS, ROUTES
from sandboxcp_infra.api import ApiGatewayLoggingRole, RoutedRestApi

# Executors heartbeat every 5 s per running execution: more steady traffic here than on the public API.
INTERNAL_RATE_LIMIT, INTERNAL_BURST_LIMIT = 500, 1000


class InternalApi(RoutedRestApi):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        log_retention: logs.RetentionDays,
        logging_role: ApiGatewayLoggingRole | None,
        endpoint: ec2.IInterfaceVpcEndpoint,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Sandbox Control Plane internal API (executor callbacks, Bearer <callback token>)",
            routes=[r for r in ROUTES if r.api == "internal"],
            functions=functions,
            # Only the callback authorizer: an internal route marked anything else fails the synth.
            authorizers={"callback": functions[AUTHORIZERS["callback"].module]},
            log_retention=log_retention,
            logging_role=logging_role,
            rate_limit=INTERNAL_RATE_LIMIT,
            burst_limit=INTERNAL_BURST_LIMIT,
            private_endpoint=endpoint,
        )

"""The VPC the sandboxes and the functions that talk to them share.

Created (default): two AZs of *isolated* subnets, no NAT and no internet gateway, with VPC endpoints for the
AWS APIs used from inside it. Untrusted code in a sandbox has no route to the internet whatever its security
group says; the functions reach DynamoDB and S3 through gateway endpoints, the rest through interface
endpoints. Imported (`-c vpc_id=...`, looked up at synth): its private subnets are used as they are and
only the execute-api endpoint is added (docs/deploy.md lists what such a VPC must provide).

The internal API is PRIVATE: sandboxes call it through the execute-api interface endpoint made here, by the
endpoint-specific hostname `<api id>-<vpce id>.execute-api.<region>.amazonaws.com` (the endpoint is
associated with the API), so the endpoint needs no private DNS and cannot clash with an existing
execute-api endpoint in an imported VPC."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from sandboxcp.routes import all_modules

if TYPE_CHECKING:
    from sandboxcp_infra.functions import FunctionSpec

HTTPS = ec2.Port.tcp(443)
# Modules that call a sandbox's executor (executor_url) without driving the runtime; functions with the
# `runtime` access string also go in the VPC. A renamed module fails the synth (see vpc_modules).
EXECUTOR_CLIENTS = ("executions_submit", "executions_submit_sync", "schedule_reap_executions")
CREATED_VPC_AZS = 2
CREATED_VPC_CIDR = "10.0.0.0/16"


def vpc_modules(specs: Mapping[str, FunctionSpec]) -> list[str]:
    """The functions placed in the VPC: those that reach executors or drive the sandbox runtime."""
    unknown = set(EXECUTOR_CLIENTS) - set(all_modules())
    if unknown:
        raise ValueError(f"network.EXECUTOR_CLIENTS names modules the route table lacks: {sorted(unknown)}")
    return [m for m, spec in specs.items() if "runtime" in spec.access or m in EXECUTOR_CLIENTS]


class Network(Construct):
    """`vpc`, `subnets` (where functions, endpoints and ECS sandboxes go), `functions_sg` (the VPC
    functions' security group: HTTPS out, plus what each runtime adds towards its sandboxes) and
    `execute_api_endpoint`."""

    def __init__(
        self, scope: Construct, construct_id: str, *, vpc_id: str | None, log_retention: logs.RetentionDays
    ) -> None:
        super().__init__(scope, construct_id)
        self.created = vpc_id is None
        if vpc_id is None:
            self.vpc: ec2.IVpc = ec2.Vpc(
                self,
                "Vpc",
                ip_addresses=ec2.IpAddresses.cidr(CREATED_VPC_CIDR),
                max_azs=CREATED_VPC_AZS,
                nat_gateways=0,
                subnet_configuration=[
                    ec2.SubnetConfiguration(
                        name="Private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=20
                    )
                ],
                # Every flow, accepted or rejected: the record of what untrusted code tried to reach.
                flow_logs={
                    "All": ec2.FlowLogOptions(
                        destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                            logs.LogGroup(
                                self,
                                "FlowLogs",
                                retention=log_retention,
                                removal_policy=RemovalPolicy.DESTROY,
                            )
                        ),
                        traffic_type=ec2.FlowLogTrafficType.ALL,
                    )
                },
            )
            subnet_type = ec2.SubnetType.PRIVATE_ISOLATED
        else:
            self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=vpc_id)
            subnet_type = (
                ec2.SubnetType.PRIVATE_WITH_EGRESS
                if self.vpc.private_subnets
                else ec2.SubnetType.PRIVATE_ISOLATED
            )
        # A literal, not the VPC's CidrBlock attribute, where we made it: rules read plainly (and cdk-nag can
        # check them); a looked-up VPC's CIDR is a literal already.
        self.cidr = CREATED_VPC_CIDR if vpc_id is None else self.vpc.vpc_cidr_block
        self.subnets = ec2.SubnetSelection(subnet_type=subnet_type)
        self._endpoint_subnets = ec2.SubnetSelection(subnet_type=subnet_type, one_per_az=True)

        self.functions_sg = ec2.SecurityGroup(
            self,
            "Functions",
            vpc=self.vpc,
            description="sandboxcp functions that reach sandboxes: HTTPS to AWS APIs, executor ports",
            allow_all_outbound=False,
        )
        self.functions_sg.add_egress_rule(
            ec2.Peer.any_ipv4(), HTTPS, "AWS APIs: VPC endpoints (created VPC) or the VPC's own egress"
        )

        # Interface endpoints accept HTTPS from anything in the VPC: functions, sandboxes, Docker hosts, pods.
        self.endpoints_sg = ec2.SecurityGroup(
            self,
            "Endpoints",
            vpc=self.vpc,
            description="sandboxcp interface VPC endpoints: HTTPS from the VPC",
            allow_all_outbound=False,
        )
        self.endpoints_sg.add_ingress_rule(ec2.Peer.ipv4(self.cidr), HTTPS, "HTTPS from the VPC")

        self.execute_api_endpoint = self.vpc.add_interface_endpoint(
            "ExecuteApi",
            service=ec2.InterfaceVpcEndpointAwsService.APIGATEWAY,
            subnets=self._endpoint_subnets,
            security_groups=[self.endpoints_sg],
            open=False,  # endpoints_sg admits the VPC already
            private_dns_enabled=False,
        )
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {
            "execute-api": self.execute_api_endpoint
        }
        if self.created:
            self.vpc.add_gateway_endpoint(
                "DynamoDb",
                service=ec2.GatewayVpcEndpointAwsService.DYNAMODB,
                subnets=[self.subnets],
            )
            # S3: the functions' workspace reads and writes, sandboxes' presigned URLs, ECR image layers.
            self.vpc.add_gateway_endpoint(
                "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.subnets]
            )

    def add_interface_endpoints(self, **services: ec2.InterfaceVpcEndpointAwsService) -> None:
        """Endpoints a runtime needs (by short name, e.g. ecs=...). Made only in a created VPC: an imported
        VPC is expected to reach these services already (docs/deploy.md)."""
        if not self.created:
            return
        for name, service in services.items():
            if name in self.interface_endpoints:
                continue
            self.interface_endpoints[name] = self.vpc.add_interface_endpoint(
                "".join(part.capitalize() for part in name.replace(".", "-").split("-")),
                service=service,
                subnets=self._endpoint_subnets,
                security_groups=[self.endpoints_sg],
                open=False,
                private_dns_enabled=True,
            )

    @property
    def subnet_ids(self) -> list[str]:
        return self.vpc.select_subnets(subnet_type=self.subnets.subnet_type).subnet_ids

"""The VPC the sandboxes and the functions that talk to them share.

Created (default): two AZs of *isolated* subnets, no NAT and no internet gateway, with VPC endpoints for the
AWS APIs used from inside it. Untrusted code in a sandbox has no route to the internet whatever its security
group says; the functions reach DynamoDB and S3 through gateway endpoints, the rest through interface
endpoints. Imported (`-c vpc_id=...`, looked up at synth): its private subnets are used as they are and
only the execute-api endpoint is added (docs/deploy.md lists what such a VPC must provide).

The internal API is PRIVATE: sandboxes call it through the execute-api interface endpoint made here, by the
endpoint-specific hostname `<api id>-<vpce id>.execute-api.<region>.amazonaws.com` (the endpoint is
associated with the API), so the endpoint needs no private DNS and cannot clash with an existing
execute-api endpoint in an imported VPC.

What the VPC lets sandbox code reach (docs/network.md), in a created VPC:
- endpoint policies: S3 only the workspace bucket (and, where ECS pulls images, ECR's layer bucket);
  DynamoDB and the interface endpoints only this account's principals on this account's resources; the
  execute-api endpoint only this account's APIs (each private API's own policy admits its endpoints);
- sandbox security groups: HTTPS to the interface endpoints' group and to S3's prefix list, nothing else;
- a Route 53 Resolver DNS Firewall: the names of the services above resolve, every other name gets
  NXDOMAIN, so DNS cannot carry data out either.
An imported VPC is someone else's: only the execute-api endpoint (with its policy) and the sandbox security
groups are ours there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import jsii
from aws_cdk import Aws, IStableListProducer, Lazy, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53resolver as route53resolver
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct

from sandboxcp.routes import all_modules
from sandboxcp_infra.nag import acknowledge

if TYPE_CHECKING:
    from sandboxcp_infra.functions import FunctionSpec

HTTPS = ec2.Port.tcp(443)
# Modules that call a sandbox's executor (executor_url) without driving the runtime; functions with the
# `runtime` access string also go in the VPC. A renamed module fails the synth (see vpc_modules).
EXECUTOR_CLIENTS = (
    "sessions_create",
    "executions_submit",
    "executions_submit_sync",
    "schedule_reap_executions",
)
CREATED_VPC_AZS = 2
CREATED_VPC_CIDR = "10.0.0.0/16"
# What the workspace's callers do through the S3 gateway endpoint: object reads and writes (functions,
# presigned URLs), tags (expiry after terminate), listings.
WORKSPACE_S3_ACTIONS = (
    "s3:GetObject*",
    "s3:PutObject*",
    "s3:DeleteObject*",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:ListBucket*",
    "s3:GetBucketLocation",
)
# ECR keeps image layers in this AWS-owned bucket; Fargate downloads them through the S3 gateway endpoint.
ECR_LAYER_BUCKET = "prod-{region}-starport-layer-bucket"
# The names each endpoint's service answers to inside the VPC, by the endpoint's short name; any other
# service is `<name>.<region>.amazonaws.com`. S3 also by its global names, which some SDKs use in
# us-east-1 (elsewhere they lead nowhere: no route, and the endpoint policy still applies).
SERVICE_DNS_NAMES: dict[str, tuple[str, ...]] = {
    "execute-api": ("*.execute-api.{region}.amazonaws.com",),
    "ecr.api": ("api.ecr.{region}.amazonaws.com",),
    "ecr.dkr": ("*.dkr.ecr.{region}.amazonaws.com",),
    "s3": (
        "s3.{region}.amazonaws.com",
        "*.s3.{region}.amazonaws.com",
        "s3.amazonaws.com",
        "*.s3.amazonaws.com",
    ),
}
# The id CDK gives the singleton function behind every AwsCustomResource of a stack.
AWS_CUSTOM_RESOURCE_PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"
DNS_FIREWALL_ALLOW_PRIORITY, DNS_FIREWALL_BLOCK_PRIORITY = 100, 200
DNS_FIREWALL_ASSOCIATION_PRIORITY = 1000  # CloudFormation accepts 101..9899


@jsii.implements(IStableListProducer)
class _ListProducer:
    """A list CDK reads when it writes the template, so names added after this point still count."""

    def __init__(self, items: list[str]) -> None:
        self._items = items

    def produce(self) -> list[str]:
        return list(self._items)


def service_dns_names(name: str) -> list[str]:
    """The DNS names of the AWS service an endpoint called `name` (e.g. "logs", "ecr.dkr") serves."""
    patterns = SERVICE_DNS_NAMES.get(name, (f"{name}.{{region}}.amazonaws.com",))
    return [pattern.format(region=Aws.REGION) for pattern in patterns]


def this_account_only() -> iam.PolicyStatement:
    """An interface endpoint's policy: callers of this account on resources of this account. Actions that
    name no resource (ecr:GetAuthorizationToken, ecs:DescribeTaskDefinition) carry no aws:ResourceAccount,
    hence IfExists; the caller's account is checked always, so stolen or foreign credentials get nowhere."""
    return iam.PolicyStatement(
        principals=[iam.AnyPrincipal()],
        actions=["*"],
        resources=["*"],
        conditions={
            "StringEquals": {"aws:PrincipalAccount": Aws.ACCOUNT_ID},
            "StringEqualsIfExists": {"aws:ResourceAccount": Aws.ACCOUNT_ID},
        },
    )


def vpc_modules(specs: Mapping[str, FunctionSpec]) -> list[str]:
    """The functions placed in the VPC: those that reach executors or drive the sandbox runtime."""
    unknown = set(EXECUTOR_CLIENTS) - set(all_modules())
    if unknown:
        raise ValueError(f"network.EXECUTOR_CLIENTS names modules the route table lacks: {sorted(unknown)}")
    return [m for m, spec in specs.items() if "runtime" in spec.access or m in EXECUTOR_CLIENTS]


class Network(Construct):
    """`vpc`, `subnets` (where functions, endpoints and ECS sandboxes go), `functions_sg` (the VPC
    functions' security group: HTTPS out, plus what each runtime adds towards its sandboxes),
    `endpoints_sg`, `execute_api_endpoint` and, in a created VPC, `dns_firewall` (its rule group).

    `flow_logs_removal`: the flow logs record what untrusted code tried to reach; they are kept with the data
    (RetainExceptOnCreate unless `retain_data=false`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str | None,
        log_retention: logs.RetentionDays,
        workspace_bucket: s3.IBucket,
        flow_logs_removal: RemovalPolicy = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    ) -> None:
        super().__init__(scope, construct_id)
        self.created = vpc_id is None
        self._log_retention = log_retention
        self._dns_names: list[str] = []
        self._s3_prefix_list_id: str | None = None
        self.s3_endpoint: ec2.GatewayVpcEndpoint | None = None
        self.dns_firewall: route53resolver.CfnFirewallRuleGroup | None = None
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
                                removal_policy=flow_logs_removal,
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
        # Only this account's APIs (the internal API among them): not a way into anyone else's private API.
        # Not the internal API alone: it names this endpoint in its own policy, so naming it here would be a
        # dependency cycle. Unsigned calls (bearer tokens) have no principal account to check.
        self.execute_api_endpoint.add_to_policy(
            iam.PolicyStatement(
                principals=[iam.AnyPrincipal()],
                actions=["execute-api:Invoke"],
                resources=[Stack.of(self).format_arn(service="execute-api", resource="*")],
            )
        )
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {
            "execute-api": self.execute_api_endpoint
        }
        self.allow_dns_names(*service_dns_names("execute-api"))
        if self.created:
            dynamodb = self.vpc.add_gateway_endpoint(
                "DynamoDb",
                service=ec2.GatewayVpcEndpointAwsService.DYNAMODB,
                subnets=[self.subnets],
            )
            dynamodb.add_to_policy(
                iam.PolicyStatement(
                    principals=[iam.AnyPrincipal()],
                    actions=["dynamodb:*"],
                    resources=[
                        Stack.of(self).format_arn(service="dynamodb", resource="table", resource_name="*")
                    ],
                    conditions={"StringEquals": {"aws:PrincipalAccount": Aws.ACCOUNT_ID}},
                )
            )
            self.allow_dns_names(*service_dns_names("dynamodb"))
            # S3: the functions' workspace reads and writes and sandboxes' presigned URLs, on the workspace
            # bucket alone (allow_ecr_image_layers adds ECR's layer bucket where a runtime pulls images).
            self.s3_endpoint = self.vpc.add_gateway_endpoint(
                "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.subnets]
            )
            self.s3_endpoint.add_to_policy(
                iam.PolicyStatement(
                    principals=[iam.AnyPrincipal()],
                    actions=list(WORKSPACE_S3_ACTIONS),
                    resources=[workspace_bucket.bucket_arn, workspace_bucket.arn_for_objects("*")],
                    conditions={"StringEquals": {"aws:PrincipalAccount": Aws.ACCOUNT_ID}},
                )
            )
            self.allow_dns_names(*service_dns_names("s3"))
            self.dns_firewall = self._dns_firewall()

    def add_interface_endpoints(self, **services: ec2.InterfaceVpcEndpointAwsService) -> None:
        """Endpoints a runtime needs (by short name, e.g. ecs=...). Made only in a created VPC: an imported
        VPC is expected to reach these services already (docs/deploy.md)."""
        if not self.created:
            return
        for name, service in services.items():
            if name in self.interface_endpoints:
                continue
            endpoint = self.vpc.add_interface_endpoint(
                "".join(part.capitalize() for part in name.replace(".", "-").split("-")),
                service=service,
                subnets=self._endpoint_subnets,
                security_groups=[self.endpoints_sg],
                open=False,
                private_dns_enabled=True,
            )
            endpoint.add_to_policy(this_account_only())
            self.interface_endpoints[name] = endpoint
            self.allow_dns_names(*service_dns_names(name))

    def allow_ecr_image_layers(self) -> None:
        """Let image pulls through the S3 gateway endpoint: ECR serves layers from its own bucket."""
        if self.s3_endpoint is None:
            return
        layers = ECR_LAYER_BUCKET.format(region=Aws.REGION)
        self.s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{layers}/*"],
            )
        )

    def allow_dns_names(self, *names: str) -> None:
        """Names the DNS firewall lets resolve (besides the endpoints' services), e.g. a Docker host's."""
        self._dns_names.extend(n for n in names if n not in self._dns_names)

    def restrict_sandbox_egress(self, security_group: ec2.SecurityGroup) -> None:
        """A sandbox-facing security group sends HTTPS to the interface endpoints (the internal API's among
        them) and to S3's prefix list (presigned URLs, image layers through the gateway endpoint), nothing
        else. The group must be made with allow_all_outbound=False."""
        security_group.add_egress_rule(
            ec2.Peer.security_group_id(self.endpoints_sg.security_group_id),
            HTTPS,
            "VPC interface endpoints: internal API, and where made image pulls and logs",
        )
        security_group.add_egress_rule(
            ec2.Peer.prefix_list(self.s3_prefix_list_id), HTTPS, "S3: presigned workspace URLs, image layers"
        )

    @property
    def s3_prefix_list_id(self) -> str:
        """The region's S3 prefix list (`com.amazonaws.<region>.s3`), looked up at deploy time: its id
        differs per region and the template is region-agnostic."""
        if self._s3_prefix_list_id is None:
            name = f"com.amazonaws.{Aws.REGION}.s3"
            lookup = cr.AwsCustomResource(
                self,
                "S3PrefixList",
                on_update=cr.AwsSdkCall(
                    service="EC2",
                    action="DescribeManagedPrefixLists",
                    parameters={"Filters": [{"Name": "prefix-list-name", "Values": [name]}]},
                    physical_resource_id=cr.PhysicalResourceId.of(name),
                    output_paths=["PrefixLists.0.PrefixListId"],
                ),
                policy=cr.AwsCustomResourcePolicy.from_statements(
                    [iam.PolicyStatement(actions=["ec2:DescribeManagedPrefixLists"], resources=["*"])]
                ),
                install_latest_aws_sdk=False,
                # Ours, with the stack's retention and removed with it (CDK's default group is kept forever).
                log_group=logs.LogGroup(
                    self,
                    "S3PrefixListLogs",
                    retention=self._log_retention,
                    removal_policy=RemovalPolicy.DESTROY,
                ),
            )
            acknowledge(
                lookup,
                "AwsSolutions-IAM5[Resource::*]",
                "ec2:DescribeManagedPrefixLists has no resource-level permissions; it only reads.",
            )
            # The stack's one provider function for such lookups (CDK's singleton, named by its uuid).
            provider = Stack.of(self).node.find_child(AWS_CUSTOM_RESOURCE_PROVIDER)
            acknowledge(
                provider,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's AwsCustomResource provider (the S3 prefix list lookup): log writes only, as CDK "
                "makes it.",
            )
            self._s3_prefix_list_id = lookup.get_response_field("PrefixLists.0.PrefixListId")
        return self._s3_prefix_list_id

    def _dns_firewall(self) -> route53resolver.CfnFirewallRuleGroup:
        """Resolve the services' names (allow_dns_names, filled by the time the template is written), answer
        NXDOMAIN to everything else: no lookups of arbitrary names, so no data out through DNS queries."""
        allowed = route53resolver.CfnFirewallDomainList(
            self,
            "AllowedNames",
            domains=Lazy.list(_ListProducer(self._dns_names)),
        )
        everything = route53resolver.CfnFirewallDomainList(self, "EveryName", domains=["*"])
        group = route53resolver.CfnFirewallRuleGroup(
            self,
            "DnsFirewall",
            firewall_rules=[
                route53resolver.CfnFirewallRuleGroup.FirewallRuleProperty(
                    action="ALLOW",
                    firewall_domain_list_id=allowed.attr_id,
                    priority=DNS_FIREWALL_ALLOW_PRIORITY,
                    # AWS answers its names through CNAMEs of its own (s3.<region> -> s3-r-w...): follow them.
                    firewall_domain_redirection_action="TRUST_REDIRECTION_DOMAIN",
                ),
                route53resolver.CfnFirewallRuleGroup.FirewallRuleProperty(
                    action="BLOCK",
                    block_response="NXDOMAIN",
                    firewall_domain_list_id=everything.attr_id,
                    priority=DNS_FIREWALL_BLOCK_PRIORITY,
                ),
            ],
        )
        route53resolver.CfnFirewallRuleGroupAssociation(
            self,
            "DnsFirewallAssociation",
            firewall_rule_group_id=group.attr_id,
            vpc_id=self.vpc.vpc_id,
            priority=DNS_FIREWALL_ASSOCIATION_PRIORITY,
        )
        return group

    @property
    def subnet_ids(self) -> list[str]:
        return self.vpc.select_subnets(subnet_type=self.subnets.subnet_type).subnet_ids

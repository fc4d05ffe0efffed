"""`runtime=docker`: sandboxes are containers on Docker hosts the operator runs (the default engine at
`docker_host`, more in the runtime_nodes table), driven over the Engine API with TCP+TLS.

The stack makes the secret holding the hosts' TLS client material (created with an empty JSON template; the
operator fills it, docs/deploy.md) and a security group for the hosts that admits the functions on the
engine port and on Docker's ephemeral range, where each sandbox's executor port is published. `runtime`
access grants `secretsmanager:GetSecretValue` on that secret and read access to runtime_nodes."""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from aws_cdk import SecretValue
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from sandboxcp.routes import RUNTIME_IMPLIED_ACCESS
from sandboxcp_infra.nag import acknowledge
from sandboxcp_infra.naming import env_var
from sandboxcp_infra.network import Network
from sandboxcp_infra.runtime import SandboxRuntime

# PEM strings, as `docker --tlsverify --tlscacert --tlscert --tlskey` take them.
TLS_SECRET_TEMPLATE = {"ca": "", "cert": "", "key": ""}
# Docker publishes `-p <executor port>` on a host port from the kernel's ephemeral range.
PUBLISHED_PORTS = ec2.Port.tcp_range(32768, 60999)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class DockerSandboxes(SandboxRuntime):
    implied_access = RUNTIME_IMPLIED_ACCESS["docker"]

    def __init__(self, scope: Construct, construct_id: str, *, network: Network, docker_host: str) -> None:
        super().__init__(scope, construct_id, network=network)
        network.add_interface_endpoints(secretsmanager=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER)
        engine_host = urlsplit(docker_host).hostname
        if engine_host and not _is_ip(engine_host):
            network.allow_dns_names(engine_host)  # the functions resolve the engine's name in the VPC

        self.tls_secret = secretsmanager.Secret(
            self,
            "TlsClient",
            description="sandboxcp: TLS client certificate, key and CA (PEM) for the Docker Engine API",
            # A template to fill, not a secret: the operator puts the real values (docs/deploy.md).
            secret_string_value=SecretValue.unsafe_plain_text(json.dumps(TLS_SECRET_TEMPLATE)),
        )
        acknowledge(
            self.tls_secret,
            "AwsSolutions-SMG4",
            "The value is a client certificate issued by the Docker hosts' CA, rotated by re-issuing it and "
            "putting the new PEMs into the secret (docs/deploy.md); there is no password for a rotation "
            "Lambda to change.",
        )

        self.hosts_security_group = ec2.SecurityGroup(
            self,
            "Hosts",
            vpc=network.vpc,
            description="sandboxcp Docker hosts: Engine API and published executor ports from the functions",
            allow_all_outbound=False,
        )
        # Sandboxes share their host's network path: the internal API's endpoint and S3 (presigned URLs) only.
        # Whatever the hosts themselves need besides (management, image pulls) goes in the operator's own
        # security groups, which add to this one (docs/network.md).
        network.restrict_sandbox_egress(self.hosts_security_group)
        engine_port = urlsplit(docker_host).port
        if engine_port is None:
            raise ValueError(f"docker_host {docker_host!r} has no port")
        connections = network.functions_sg.connections
        connections.allow_to(self.hosts_security_group, ec2.Port.tcp(engine_port), "Docker Engine API (TLS)")
        connections.allow_to(
            self.hosts_security_group, PUBLISHED_PORTS, "Executor API, published per sandbox"
        )

        self.environment = {
            env_var("docker_host"): docker_host,
            env_var("docker_tls_secret_arn"): self.tls_secret.secret_arn,
        }
        self.outputs = {
            "DockerTlsSecretArn": (self.tls_secret.secret_arn, "Put the Docker hosts' TLS client PEMs here"),
            "DockerHostsSecurityGroupId": (
                self.hosts_security_group.security_group_id,
                "Attach to the Docker hosts: admits the functions on the engine and executor ports",
            ),
        }

    def _grant(self, function: lambda_.Function) -> None:
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"], resources=[self.tls_secret.secret_arn]
            )
        )

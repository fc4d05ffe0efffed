"""`runtime=eks`: sandboxes are pods on the platform team's EKS cluster, imported by context, never created.

Every function with `runtime` access gets an EKS access entry for its own role, with AmazonEKSEditPolicy
scoped to the sandbox namespace alone, and `eks:DescribeCluster` on that cluster: the Kubernetes token is a
presigned STS GetCallerIdentity URL signed with the function's own credentials, so no other IAM permission
is involved. The namespace and its default-deny NetworkPolicy are made with kubectl (docs/deploy.md)."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from sandboxcp.adapters.runtimes.eks import EXECUTOR_PORT
from sandboxcp_infra.config import EksConfig
from sandboxcp_infra.naming import env_var
from sandboxcp_infra.network import HTTPS, Network
from sandboxcp_infra.runtime import SandboxRuntime

ACCESS_POLICY = "AmazonEKSEditPolicy"


class EksSandboxes(SandboxRuntime):
    def __init__(self, scope: Construct, construct_id: str, *, network: Network, cluster: EksConfig) -> None:
        super().__init__(scope, construct_id, network=network)
        self.config = cluster
        stack = Stack.of(self)
        self.cluster_arn = stack.format_arn(
            service="eks", resource="cluster", resource_name=cluster.cluster_name
        )
        self.access_policy_arn = f"arn:{stack.partition}:eks::aws:cluster-access-policy/{ACCESS_POLICY}"
        self.access_entries: dict[str, eks.CfnAccessEntry] = {}

        # Pods' IPs come from the cluster VPC. With the cluster security group known, the functions reach
        # exactly it (and it admits them on the executor port and the API's); otherwise any VPC address.
        port = ec2.Port.tcp(EXECUTOR_PORT)
        if cluster.cluster_security_group_id:
            pods = ec2.SecurityGroup.from_security_group_id(
                self, "ClusterSecurityGroup", cluster.cluster_security_group_id, mutable=True
            )
            network.functions_sg.connections.allow_to(pods, port, "sandboxcp functions to executor pods")
            # The cluster security group also guards the private API endpoint's network interfaces.
            network.functions_sg.connections.allow_to(pods, HTTPS, "sandboxcp functions to the EKS API")
        else:
            network.functions_sg.add_egress_rule(
                ec2.Peer.ipv4(network.cidr), port, "sandboxcp functions to executor pods"
            )

        self.environment = {
            env_var("eks_cluster_name"): cluster.cluster_name,
            env_var("eks_endpoint"): cluster.endpoint,
            env_var("eks_ca_data"): cluster.ca_data,
            env_var("eks_namespace"): cluster.namespace,
        }
        if cluster.s3_cidrs:
            # Sandboxes without network reach S3 (their workspace sync) at these addresses only.
            self.environment[env_var("eks_s3_cidrs")] = cluster.s3_cidrs

    def _grant(self, function: lambda_.Function) -> None:
        if function.role is None:
            raise ValueError(f"{function.node.path} has no role for an EKS access entry")
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["eks:DescribeCluster"], resources=[self.cluster_arn])
        )
        # The function's group construct is named after its module (functions.Functions).
        name = function.node.scope.node.id if function.node.scope else function.node.id
        self.access_entries[name] = eks.CfnAccessEntry(
            self,
            f"{name}Access",
            cluster_name=self.config.cluster_name,
            principal_arn=function.role.role_arn,
            type="STANDARD",
            access_policies=[
                eks.CfnAccessEntry.AccessPolicyProperty(
                    policy_arn=self.access_policy_arn,
                    access_scope=eks.CfnAccessEntry.AccessScopeProperty(
                        type="namespace", namespaces=[self.config.namespace]
                    ),
                )
            ],
        )

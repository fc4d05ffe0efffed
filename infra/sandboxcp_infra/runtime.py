"""The sandbox runtime of a deployment (`-c runtime=ecs|eks|docker`): the resources its sandboxes need and
what the route table's `runtime` access string grants. One subclass per runtime:

    ecs_runtime.EcsSandboxes        ECS cluster, a Fargate task definition per default template
    eks_runtime.EksSandboxes        access entries on the platform team's (imported) EKS cluster
    docker_runtime.DockerSandboxes  the Docker hosts' TLS client secret and their security group

`grant(function)` gives a function with `runtime` access that runtime's permissions and environment, and
nothing else; functions without `runtime` get neither."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from sandboxcp_infra.config import DeploymentConfig
from sandboxcp_infra.network import Network


class SandboxRuntime(Construct):
    # Access strings a `runtime` grant implies besides the runtime's own permissions (e.g. "runtime_nodes:r").
    implied_access: tuple[str, ...] = ()

    def __init__(self, scope: Construct, construct_id: str, *, network: Network) -> None:
        super().__init__(scope, construct_id)
        self.network = network
        # Environment variables (Settings aliases) of every function with `runtime` access.
        self.environment: dict[str, str] = {}
        # Stack outputs the operator needs: name -> (value, description).
        self.outputs: dict[str, tuple[str, str]] = {}

    def grant(self, function: lambda_.Function) -> None:
        for name, value in self.environment.items():
            function.add_environment(name, value)
        self._grant(function)

    def _grant(self, function: lambda_.Function) -> None:
        raise NotImplementedError


def build_runtime(scope: Construct, config: DeploymentConfig, network: Network) -> SandboxRuntime:
    # Imported here: each module pulls only its own CDK modules.
    if config.runtime == "ecs":
        from sandboxcp_infra.ecs_runtime import EcsSandboxes

        return EcsSandboxes(
            scope,
            "Sandboxes",
            network=network,
            task_definition_prefix=config.ecs_task_definition_prefix,
            log_retention=config.log_retention,
        )
    if config.runtime == "eks":
        from sandboxcp_infra.eks_runtime import EksSandboxes

        if config.eks is None:
            raise ValueError("runtime=eks without its cluster settings")
        return EksSandboxes(scope, "Sandboxes", network=network, cluster=config.eks)
    if config.runtime == "docker":
        from sandboxcp_infra.docker_runtime import DockerSandboxes

        if config.docker_host is None:
            raise ValueError("runtime=docker without docker_host")
        return DockerSandboxes(scope, "Sandboxes", network=network, docker_host=config.docker_host)
    raise ValueError(f"no sandbox runtime {config.runtime!r}")

"""Runtime adapters. Each is imported only when chosen, so a function never pays for a client
(kubernetes, boto3 ECS) it does not use."""

from __future__ import annotations

from sandboxcp.domain.ports import Runtime
from sandboxcp.settings import Settings


def build_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "process":
        from sandboxcp.adapters.runtimes.process import ProcessRuntime

        return ProcessRuntime.shared(settings.sandbox_state_dir, settings.callback_base_url)
    if settings.runtime == "docker":
        from sandboxcp.adapters.runtimes.docker import DockerRuntime

        return DockerRuntime.from_settings(settings)
    if settings.runtime == "ecs":
        from sandboxcp.adapters.runtimes.ecs import EcsRuntime

        return EcsRuntime.from_settings(settings)
    from sandboxcp.adapters.runtimes.eks import EksRuntime

    return EksRuntime.from_settings(settings)

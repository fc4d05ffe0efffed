"""Runtime adapters. Each is imported only when chosen, so a function never pays for a client
(kubernetes, boto3 ECS) it does not use."""

from __future__ import annotations

from sandboxcp.domain.ports import Runtime
from sandboxcp.settings import Settings


def build_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "process":
        from sandboxcp.adapters.runtimes.process import ProcessRuntime

        return ProcessRuntime.shared(settings.sandbox_state_dir, settings.callback_base_url)
    raise NotImplementedError(f"runtime '{settings.runtime}' is not available in this build")

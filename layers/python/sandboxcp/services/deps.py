"""The ports a service needs, built once per process from the settings. Tests inject their own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sandboxcp.settings import Settings, get_settings

if TYPE_CHECKING:
    from sandboxcp.adapters.dynamo.tenants import DynamoTenantQuotas
    from sandboxcp.adapters.result_store import S3ResultStore
    from sandboxcp.domain.ports import (
        ApiKeyRepository,
        ContextRepository,
        ExecutionRepository,
        ExecutorClient,
        HealthChecks,
        LaunchWorkflow,
        NodeProber,
        NodeRepository,
        OperationsQueries,
        OutputPush,
        OutputRepository,
        ProcessRepository,
        Runtime,
        SessionRepository,
        TemplateStore,
        TenantQuotaStore,
        WarmPoolRepository,
        WorkspaceStore,
    )
    from sandboxcp.services.recent_sessions import RecentSessions


@dataclass
class Dependencies:
    """Ports are cached properties: assign an attribute (deps.runtime = fake) to inject a double."""

    settings: Settings

    # Each port is built on first use: a function only pays for the clients it touches.
    @cached_property
    def sessions(self) -> SessionRepository:
        from datetime import timedelta

        from sandboxcp.adapters.dynamo.sessions import DynamoSessionRepository

        self._bind()
        retention = timedelta(days=self.settings.session_retention_days)
        return DynamoSessionRepository(self._tenant_quotas, retention=retention)

    @cached_property
    def executions(self) -> ExecutionRepository:
        from datetime import timedelta

        from sandboxcp.adapters.dynamo.executions import DynamoExecutionRepository

        self._bind()
        retention = timedelta(days=self.settings.execution_retention_days)
        return DynamoExecutionRepository(self.results, self._tenant_quotas, retention=retention)

    @cached_property
    def recent_sessions(self) -> RecentSessions:
        """Running sessions this instance read, reused by submits (validated by their write)."""
        from sandboxcp.services.recent_sessions import RecentSessions

        return RecentSessions()

    @cached_property
    def results(self) -> S3ResultStore:
        """Large outcomes and ended sandboxes' logs in the workspace bucket (results/, expiring)."""
        from sandboxcp.adapters.result_store import S3ResultStore

        return S3ResultStore(self.settings.workspace_bucket)

    @cached_property
    def quotas(self) -> TenantQuotaStore:
        return self._tenant_quotas

    @cached_property
    def _tenant_quotas(self) -> DynamoTenantQuotas:
        from sandboxcp.adapters.dynamo.tenants import DynamoTenantQuotas
        from sandboxcp.domain.quotas import QuotaLimits

        self._bind()
        s = self.settings
        defaults = QuotaLimits(
            max_sessions=s.quota_max_sessions,
            max_inflight_executions=s.quota_max_inflight_executions,
            max_cpu=s.quota_max_cpu,
            max_memory_mb=s.quota_max_memory_mb,
            max_requests_per_second=s.quota_max_requests_per_second,
        )
        return DynamoTenantQuotas(defaults)

    @cached_property
    def templates(self) -> TemplateStore:
        from sandboxcp.adapters.dynamo.templates import DynamoTemplateRepository

        self._bind()
        return DynamoTemplateRepository()

    @cached_property
    def api_keys(self) -> ApiKeyRepository:
        from sandboxcp.adapters.dynamo.api_keys import DynamoApiKeyRepository

        self._bind()
        return DynamoApiKeyRepository()

    @cached_property
    def warm_pool(self) -> WarmPoolRepository:
        from sandboxcp.adapters.dynamo.warm_pool import DynamoWarmPoolRepository

        self._bind()
        return DynamoWarmPoolRepository()

    @cached_property
    def contexts(self) -> ContextRepository:
        from sandboxcp.adapters.dynamo.interactive import DynamoContextRepository

        self._bind()
        return DynamoContextRepository()

    @cached_property
    def processes(self) -> ProcessRepository:
        from sandboxcp.adapters.dynamo.interactive import DynamoProcessRepository

        self._bind()
        return DynamoProcessRepository()

    @cached_property
    def output(self) -> OutputRepository:
        from sandboxcp.adapters.dynamo.output import DynamoOutputRepository

        self._bind()
        return DynamoOutputRepository()

    @cached_property
    def output_push(self) -> OutputPush:
        from sandboxcp.adapters.output_push import build_output_push

        return build_output_push(self.settings)

    @cached_property
    def workspace(self) -> WorkspaceStore:
        from sandboxcp.adapters.workspace_store import S3WorkspaceStore

        return S3WorkspaceStore(self.settings.workspace_bucket, region=self.settings.aws_region)

    @cached_property
    def launch(self) -> LaunchWorkflow:
        from sandboxcp.adapters.launch_workflow import StepFunctionsLaunchWorkflow

        return StepFunctionsLaunchWorkflow(self.settings.launch_state_machine_arn)

    @cached_property
    def executor(self) -> ExecutorClient:
        from sandboxcp.adapters.executor_client import HttpExecutorClient

        return HttpExecutorClient()

    @cached_property
    def runtime(self) -> Runtime:
        from sandboxcp.adapters.runtimes import build_runtime

        return build_runtime(self.settings)

    # -- operations ports (runtime nodes, operator views, health checks) --
    @cached_property
    def nodes(self) -> NodeRepository:
        from sandboxcp.adapters.dynamo.nodes import DynamoNodeRepository

        self._bind()
        return DynamoNodeRepository()

    @cached_property
    def node_prober(self) -> NodeProber:
        from sandboxcp.adapters.probes import RuntimeNodeProber

        return RuntimeNodeProber(self.settings, lambda: self.runtime)

    @cached_property
    def ops(self) -> OperationsQueries:
        from sandboxcp.adapters.dynamo.operations import DynamoOperationsQueries

        self._bind()
        return DynamoOperationsQueries()

    @cached_property
    def health_checks(self) -> HealthChecks:
        from sandboxcp.adapters.probes import AwsHealthChecks

        self._bind()
        return AwsHealthChecks(self.settings, lambda: self.runtime)

    def _bind(self) -> None:
        from sandboxcp.adapters.tables import bind_tables

        bind_tables(self.settings)


# The adapter modules the ports above import on first use, by the resource of an access grant in the route
# table (sandboxcp.routes: "sessions:rw", "workspace:r", "runtime", ...). Where init is off the request path
# (SnapStart, provisioned concurrency) sandboxcp.observability.prepare_init imports a function's at init, so
# its first request finds them loaded; elsewhere they stay lazy.
_EXECUTOR = "sandboxcp.adapters.executor_client"
_ADAPTERS_BY_RESOURCE: dict[str, tuple[str, ...]] = {
    "sessions": ("sandboxcp.adapters.dynamo.sessions",),
    "executions": ("sandboxcp.adapters.dynamo.executions", "sandboxcp.adapters.result_store", _EXECUTOR),
    "templates": ("sandboxcp.adapters.dynamo.templates",),
    "api_keys": ("sandboxcp.adapters.dynamo.api_keys",),
    "tenants": ("sandboxcp.adapters.dynamo.tenants",),
    "warm_pool": ("sandboxcp.adapters.dynamo.warm_pool",),
    "runtime_nodes": ("sandboxcp.adapters.dynamo.nodes",),
    "contexts": ("sandboxcp.adapters.dynamo.interactive", _EXECUTOR),
    "processes": ("sandboxcp.adapters.dynamo.interactive", _EXECUTOR),
    "output_chunks": ("sandboxcp.adapters.dynamo.output",),
    "idempotency": ("aws_lambda_powertools.utilities.idempotency",),
    "workspace": ("sandboxcp.adapters.workspace_store",),
    "launch": ("sandboxcp.adapters.launch_workflow",),
    "runtime": ("sandboxcp.adapters.runtimes", "sandboxcp.adapters.probes", _EXECUTOR),
}
_RUNTIME_ADAPTER = {
    "process": "sandboxcp.adapters.runtimes.process",
    "docker": "sandboxcp.adapters.runtimes.docker",
    "ecs": "sandboxcp.adapters.runtimes.ecs",
    "eks": "sandboxcp.adapters.runtimes.eks",
}


def adapter_modules(access: Iterable[str], settings: Settings) -> list[str]:
    """The adapter modules a function with `access` (a route table entry's) uses, in import order; the
    runtime's own adapter (kubernetes for eks, httpx for docker, ...) only for the configured runtime."""
    modules: list[str] = []
    for grant in access:
        resource = grant.split(":", 1)[0]
        found = list(_ADAPTERS_BY_RESOURCE.get(resource, ()))
        if resource == "runtime":
            found.append(_RUNTIME_ADAPTER[settings.runtime])
        modules += [m for m in found if m not in modules]
    return modules


_deps: Dependencies | None = None


def get_deps() -> Dependencies:
    global _deps
    if _deps is None:
        _deps = Dependencies(get_settings())
    return _deps


def set_deps(deps: Dependencies | None) -> None:
    """Replace the process-wide dependencies (tests, local mode)."""
    global _deps
    _deps = deps

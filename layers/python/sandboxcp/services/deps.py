"""The ports a service needs, built once per process from the settings. Tests inject their own."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sandboxcp.domain.ports import (
    ApiKeyRepository,
    ExecutionRepository,
    ExecutorClient,
    HealthChecks,
    LaunchWorkflow,
    NodeProber,
    NodeRepository,
    OperationsQueries,
    Runtime,
    SessionRepository,
    TemplateStore,
    WarmPoolRepository,
    WorkspaceStore,
)
from sandboxcp.settings import Settings, get_settings


@dataclass
class Dependencies:
    """Ports are cached properties: assign an attribute (deps.runtime = fake) to inject a double."""

    settings: Settings

    # Each port is built on first use: a function only pays for the clients it touches.
    @cached_property
    def sessions(self) -> SessionRepository:
        from sandboxcp.adapters.dynamo.sessions import DynamoSessionRepository

        self._bind()
        return DynamoSessionRepository()

    @cached_property
    def executions(self) -> ExecutionRepository:
        from sandboxcp.adapters.dynamo.executions import DynamoExecutionRepository
        from sandboxcp.adapters.result_store import S3ResultStore

        self._bind()
        return DynamoExecutionRepository(S3ResultStore(self.settings.workspace_bucket))

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

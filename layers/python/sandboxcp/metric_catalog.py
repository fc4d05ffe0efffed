"""Every custom metric the code emits: its name, unit and dimensions (besides `service`, which every
metric carries). `record_metric` checks its calls against this table, and the CDK dashboard and alarms
are built from it, so a series the code does not emit (a renamed metric, a dimension set CloudWatch
would treat as another metric) cannot reach a dashboard. tests/unit/test_metric_catalog.py reads every
emitting call in the code; tests/infra/test_monitoring.py every metric the synthesized stack reads."""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "SandboxControlPlane"
SERVICE = "sandbox-control-plane"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str = "Count"
    dimensions: tuple[str, ...] = ()


CATALOG: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("SessionsCreated", dimensions=("template",)),
        MetricSpec("SessionsTerminated"),
        MetricSpec("SessionsReaped"),
        MetricSpec("LaunchLatency", "Milliseconds", ("runtime",)),
        MetricSpec("SandboxStartFailures", dimensions=("runtime",)),
        MetricSpec("ExecutionsSubmitted", dimensions=("language",)),
        MetricSpec("ExecutionsCompleted", dimensions=("outcome",)),
        MetricSpec("ExecutionDuration", "Milliseconds", ("language",)),
        MetricSpec("ExecutionsCrashed"),
        MetricSpec("ExecutionsTimedOutByControlPlane"),
        MetricSpec("NodeStatusChanges", dimensions=("status",)),
        MetricSpec("OrphansDestroyed"),
        MetricSpec("TemplateChanges", dimensions=("action", "outcome")),
        MetricSpec("WarmPoolClaims", dimensions=("template",)),
        MetricSpec("WarmPoolMisses", dimensions=("template",)),
        # Per container, % of the sandbox's own limit (services/containers.py); alarms above 80 %.
        MetricSpec("ContainerCpuPercent", "Percent", ("runtime",)),
        MetricSpec("ContainerMemoryPercent", "Percent", ("runtime",)),
        MetricSpec("ContainerDiskPercent", "Percent", ("runtime",)),
    )
}

LANGUAGES = ("python", "javascript", "shell")  # the `language` values (domain.models.Language)


def problem(name: str, dimensions: set[str]) -> str | None:
    """Why emitting `name` with `dimensions` would not be the catalogued metric; None when it is."""
    spec = CATALOG.get(name)
    if spec is None:
        return f"metric {name!r} is not in sandboxcp.metric_catalog"
    if dimensions != set(spec.dimensions):
        return f"metric {name!r} has dimensions {sorted(dimensions)}; catalogued: {list(spec.dimensions)}"
    return None

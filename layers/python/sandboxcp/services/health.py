"""GET /api/v1/health and GET /api/v1/metrics.

Health runs its checks concurrently, each bounded by CHECK_TIMEOUT_S: DynamoDB (a GetItem on the
templates table), S3 (HeadBucket on the workspace bucket) and the runtime through `Runtime.ping()`, which
every runtime has (process: bubblewrap present and its state dir writable; docker: the engine's `/_ping`;
ecs: DescribeClusters finds the sandbox cluster ACTIVE; eks: a read of the sandbox namespace). The answer is
`healthy` when all pass, `degraded` otherwise, and `unhealthy` (503) only when DynamoDB is down: without
it no request can be served. Failure details are reduced to the error's type (the endpoint is open).

Metrics render the in-process registry (`record_metric`) in Prometheus text format 0.0.4, plus gauges read
live from the indexes (Query COUNT): active sessions per status, in-flight executions. A tenant's key sees
its own figures only: the series labelled with its tenant, and gauges over its own sessions and executions
(labelled with it too); the operator-wide figures (nodes, orphans, templates, warm pool) and the other
tenants' are for admin keys, which see everything, with gauges over all tenants."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal

from sandboxcp.domain.models import Principal
from sandboxcp.observability import REGISTRY, TENANT_LABEL, prom_labels
from sandboxcp.services.deps import Dependencies

CHECK_TIMEOUT_S = 3.0
CheckStatus = Literal["healthy", "unhealthy"]
_pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="health-check")


def _timed(check: Callable[[], None]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as err:
        return {
            "status": "unhealthy",
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "error": type(err).__name__,
        }
    return {"status": "healthy", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def check_health(deps: Dependencies, *, timeout_s: float = CHECK_TIMEOUT_S) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of the health check."""
    checks = deps.health_checks
    runtime_name = deps.settings.runtime
    futures = {
        "dynamodb": _pool.submit(_timed, checks.dynamodb),
        "s3": _pool.submit(_timed, checks.storage),
        "runtime": _pool.submit(_timed, checks.runtime),
    }
    deadline = time.monotonic() + timeout_s
    results: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            results[name] = {"status": "unhealthy", "latency_ms": timeout_s * 1000, "error": "Timeout"}
    results["runtime"]["runtime"] = runtime_name
    if results["dynamodb"]["status"] != "healthy":
        return 503, {"status": "unhealthy", "checks": results}
    healthy = all(r["status"] == "healthy" for r in results.values())
    return 200, {"status": "healthy" if healthy else "degraded", "checks": results}


def _gauge(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [f"{name}{prom_labels(labels)} {int(value)}" for labels, value in samples]
    return lines


def metrics_text(deps: Dependencies, caller: Principal) -> str:
    """Prometheus text format 0.0.4: registry counters/summaries, then live gauges from DynamoDB, all
    limited to the caller's tenant unless the caller is an admin."""
    tenant = None if caller.is_admin else caller.tenant_id
    scope = {TENANT_LABEL: tenant} if tenant else {}
    active = deps.ops.count_active(tenant)
    lines = _gauge(
        "sandboxcp_sessions_active",
        "Sessions creating or running",
        [({"status": status, **scope}, float(count)) for status, count in sorted(active.items())],
    )
    lines += _gauge(
        "sandboxcp_executions_inflight",
        "Executions pending or running",
        [(scope, float(deps.ops.count_inflight_executions(tenant)))],
    )
    return REGISTRY.render(tenant=tenant) + "\n".join(lines) + "\n"

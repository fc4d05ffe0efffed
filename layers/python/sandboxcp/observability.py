"""Powertools Logger, Tracer and Metrics shared by every function (one instance per process), plus:

- `record_metric(name, value, unit="Count", tenant=None, **dimensions)`: one call feeds CloudWatch (EMF
  through powertools) and the in-process registry that GET /api/v1/metrics renders in Prometheus text
  format (a tenant's key sees only the series of its own `tenant`);
- `audit(action, outcome, **fields)`: one structured INFO line per security-relevant change;
- `bind_request(tenant_id=..., session_id=..., execution_id=...)`: the request's identifiers on every
  later log line of the invocation (cleared at the next invocation by `inject_lambda_context(clear_state)`);
- `job_entry(fn)`: the Lambda handler of every function no HTTP route reaches (authorizers, launch steps,
  schedules, seeding): Lambda context on the log lines, a trace segment and metrics flushed per invocation,
  as `sandboxcp.api.resolver.lambda_entry` gives the HTTP functions.

Cold start (issue #14; docs/architecture.md, "Cold starts"): the Tracer is built on first use
(`get_tracer()`, or the module attribute `tracer`). Building it imports aws_xray_sdk, whose recorder creates
two botocore clients for its sampler: about 1.4 times `import boto3`, which every function paid at import.
Handlers are wrapped with `traced(fn)`, which builds the tracer and the X-Ray decorator at the first
invocation (or never, where tracing is disabled). Where init is not on a request's path (SnapStart,
provisioned concurrency) `prepare_init()` does that work, and the first request's imports, at init instead,
so restored environments have them in memory.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from sandboxcp import metric_catalog
from sandboxcp.domain import clock

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = metric_catalog.SERVICE
PROM_PREFIX = "sandboxcp"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=metric_catalog.NAMESPACE, service=SERVICE)


R = TypeVar("R")


# -- tracing, built on first use ---------------------------------------------------------------------------
_tracer: Tracer | None = None
_tracer_lock = threading.Lock()


def get_tracer() -> Tracer:
    """The process's powertools Tracer (service sandboxcp), built on the first call."""
    global _tracer
    if _tracer is None:
        with _tracer_lock:
            if _tracer is None:
                from aws_lambda_powertools import Tracer

                _tracer = Tracer(service=SERVICE)
    return _tracer


def __getattr__(name: str) -> Any:
    """`sandboxcp.observability.tracer` as before: the Tracer, built when first asked for."""
    if name == "tracer":
        return get_tracer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tracing_disabled() -> bool:
    """Powertools' own rule: POWERTOOLS_TRACE_DISABLED, or not in Lambda (no X-Ray daemon: local mode,
    tests), or in SAM local / Chalice. A disabled Tracer records nothing."""
    from aws_lambda_powertools.tracing.tracer import Tracer  # the class only: no X-Ray SDK

    return bool(Tracer._is_tracer_disabled())


def traced(fn: Callable[[Any, Any], R]) -> Callable[[Any, Any], R]:
    """`tracer.capture_lambda_handler(fn, capture_response=False)` (one subsegment per invocation, responses
    not captured: they may hold tokens), with the Tracer and the decorator built at the first invocation
    rather than at import. Where tracing is disabled (tracing_disabled) the handler runs undecorated: the
    disabled Tracer would record nothing, and the X-Ray SDK is not loaded at all."""
    wrapped: list[Callable[[Any, Any], R]] = []

    @functools.wraps(fn)
    def handler(event: Any, context: Any) -> R:
        if not wrapped:
            disabled = tracing_disabled()
            wrapped.append(
                fn if disabled else get_tracer().capture_lambda_handler(fn, capture_response=False)
            )
        return wrapped[0](event, context)

    return handler


# -- init: lazy on demand, eager where init is off the request path ------------------------------------------
# Lambda's AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand" (init runs on the first request's path),
# "snap-start" (init runs when a version is published, and its memory is the snapshot every cold start
# restores) or "provisioned-concurrency" (init runs before any request is routed to the environment).
EAGER_INIT_TYPES = frozenset({"snap-start", "provisioned-concurrency"})
# What the first request of nearly every function imports (the tracer's X-Ray SDK is built separately):
# boto3 and the DynamoDB tables (pynamodb); then the adapters of the function's own access grants
# (sandboxcp.services.deps.adapter_modules): kubernetes only in an eks deployment's runtime functions, etc.
COLD_PATH_MODULES = ("boto3", "sandboxcp.adapters.tables")


def init_is_eager() -> bool:
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand") in EAGER_INIT_TYPES


def cold_path_modules() -> list[str]:
    """COLD_PATH_MODULES and the adapters of the function Lambda is initialising (its handler module, from
    Lambda's `_HANDLER` variable, looked up in the route table)."""
    from sandboxcp.routes import AUTHORIZERS, JOBS, LAUNCH_STEPS, ROUTES, Job, Route
    from sandboxcp.services.deps import adapter_modules
    from sandboxcp.settings import get_settings

    module = os.environ.get("_HANDLER", "").rpartition(".")[0]
    entries: list[Route | Job] = [*ROUTES, *AUTHORIZERS.values(), *LAUNCH_STEPS.values(), *JOBS]
    access = next((e.access for e in entries if e.module == module), ())
    return [*COLD_PATH_MODULES, *adapter_modules(access, get_settings())]


_prepared: set[str] = set()


def prepare_init(modules: Iterable[str] = ()) -> bool:
    """At import of a function module: when init is off the request path (SnapStart, provisioned
    concurrency), do now what the first request would do lazily: build the tracer (X-Ray SDK, patched
    libraries) and import `cold_path_modules()` and `modules`. Imports only: no client, connection,
    credential, secret or random value is made here, so a SnapStart snapshot holds nothing that must differ
    between the environments restored from it (docs/deploy.md, "SnapStart"). On demand it does nothing and
    returns False."""
    if not init_is_eager():
        return False
    if not tracing_disabled():
        get_tracer()
    wanted = [*(cold_path_modules() if not _prepared else ()), *modules]
    for module in wanted:
        if module not in _prepared:
            importlib.import_module(module)
            _prepared.add(module)
    return True


def job_entry(fn: Callable[[Any, Any], R]) -> Callable[[Any, Any], R]:
    """Wrap a non-HTTP Lambda handler: logger (Lambda context, state cleared per invocation), tracer
    (one subsegment per invocation, responses not captured: they may hold tokens; built at the first
    invocation, see `traced`) and metrics (EMF flushed at the end; no warning when a run recorded none)."""

    @logger.inject_lambda_context(clear_state=True)
    @traced
    @metrics.log_metrics(raise_on_empty_metrics=False)
    @functools.wraps(fn)
    def handler(event: Any, context: Any) -> R:
        return fn(event, context)

    prepare_init()
    return handler


# -- request context ---------------------------------------------------------------------------------------
def bind_request(
    *,
    tenant_id: str | None = None,
    session_id: str | None = None,
    execution_id: str | None = None,
    **extra: str | None,
) -> None:
    """Add the identifiers known so far to every following log line of this invocation (None is skipped)."""
    keys = {"tenant_id": tenant_id, "session_id": session_id, "execution_id": execution_id, **extra}
    _refuse_secrets(keys)
    logger.append_keys(**{k: v for k, v in keys.items() if v is not None})


# -- audit -------------------------------------------------------------------------------------------------
_SECRET_KEY = re.compile(r"token|api_?key|secret|password|passwd|authorization|credential", re.IGNORECASE)


def _refuse_secrets(fields: dict[str, Any]) -> None:
    bad = sorted(k for k in fields if _SECRET_KEY.search(k))
    if bad:
        raise ValueError(f"refusing to log fields named like secrets: {', '.join(bad)}")


def audit(action: str, outcome: str, *, tenant: str | None = None, **fields: Any) -> None:
    """Log one audit record: `{"audit": true, "action", "outcome", "tenant", "request_id", "time", ...}`.

    `action` is dotted (session.create, execution.submit, session.terminate, template.create, ...);
    `outcome` is success, denied, refused, not_found or failed. `tenant` defaults to the tenant bound by
    `bind_request`. Fields named like secrets (token, api_key, secret, password, authorization, ...) are
    refused with ValueError and nothing is logged: pass identifiers, never credentials, not even hashes."""
    _refuse_secrets(fields)
    if tenant is None:
        tenant = logger.get_current_keys().get("tenant_id")
    logger.info(
        f"audit {action} {outcome}",
        extra={
            **fields,
            "audit": True,
            "action": action,
            "outcome": outcome,
            "tenant": tenant,
            # The API request id (correlation id); in a schedule or workflow step, the Lambda request id.
            "request_id": logger.get_correlation_id() or logger.get_current_keys().get("function_request_id"),
            "time": clock.iso(clock.now()),
        },
    )


# -- metrics -----------------------------------------------------------------------------------------------
RESERVOIR = 1024  # most recent observations kept per summary series (quantiles are over these)
TENANT_LABEL = "tenant"  # the label that scopes a series to one tenant (GET /metrics with a tenant key)
QUANTILES = (0.5, 0.95, 0.99)
LabelSet = tuple[tuple[str, str], ...]


@dataclass
class _Summary:
    count: int = 0
    total: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RESERVOIR))

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.recent.append(value)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.recent)
        if not ordered:
            return float("nan")
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


class MetricsRegistry:
    """Thread-safe in-process counters (unit Count) and summaries (any other unit), by name and labels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, LabelSet], float] = {}
        self._summaries: dict[tuple[str, str, LabelSet], _Summary] = {}

    def record(self, name: str, value: float, unit: str, labels: dict[str, str]) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            if unit == "Count":
                self._counters[(name, key)] = self._counters.get((name, key), 0.0) + value
            else:
                self._summaries.setdefault((name, unit, key), _Summary()).observe(value)

    def counter(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def clear(self) -> None:
        with self._lock:
            self._counters.clear()
            self._summaries.clear()

    def render(self, *, tenant: str | None = None) -> str:
        """Prometheus text exposition format 0.0.4 (counters `<prefix>_<name>_total`, summaries with
        p50/p95/p99 over the recent observations, `_sum` and `_count`). With `tenant`, only the series
        labelled with that tenant: a tenant's view; without, every series: the operators' view."""
        lines: list[str] = []

        def shown(labels: LabelSet) -> bool:
            return tenant is None or (TENANT_LABEL, tenant) in labels

        with self._lock:
            counters = sorted((key, v) for key, v in self._counters.items() if shown(key[1]))
            summaries = sorted(
                (key, (s.count, s.total, [s.quantile(q) for q in QUANTILES]))
                for key, s in self._summaries.items()
                if shown(key[2])
            )
        seen: set[str] = set()
        for (name, labels), value in counters:
            metric = f"{prom_name(name)}_total"
            if metric not in seen:
                seen.add(metric)
                lines.append(f"# HELP {metric} {name} (count since this process started)")
                lines.append(f"# TYPE {metric} counter")
            lines.append(f"{metric}{prom_labels(dict(labels))} {prom_value(value)}")
        for (name, unit, labels), (count, total, quantiles) in summaries:
            metric = prom_name(name) + _UNIT_SUFFIX.get(unit, "")
            if metric not in seen:
                seen.add(metric)
                lines += [f"# HELP {metric} {name} in {unit}", f"# TYPE {metric} summary"]
            base = dict(labels)
            for q, v in zip(QUANTILES, quantiles, strict=True):
                lines.append(f"{metric}{prom_labels({**base, 'quantile': str(q)})} {prom_value(v)}")
            lines.append(f"{metric}_sum{prom_labels(base)} {prom_value(total)}")
            lines.append(f"{metric}_count{prom_labels(base)} {count}")
        return "\n".join(lines) + ("\n" if lines else "")


_UNIT_SUFFIX = {
    "Milliseconds": "_milliseconds",
    "Seconds": "_seconds",
    "Microseconds": "_microseconds",
    "Bytes": "_bytes",
    "Kilobytes": "_kilobytes",
    "Megabytes": "_megabytes",
    "Percent": "_percent",
}

REGISTRY = MetricsRegistry()


def prom_name(name: str) -> str:
    """`SessionsCreated` -> `sandboxcp_sessions_created` (already snake names are kept)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    snake = re.sub(r"[^a-z0-9_]+", "_", snake).strip("_")
    return f"{PROM_PREFIX}_{snake}"


def prom_labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    escaped = (f'{re.sub(r"[^a-zA-Z0-9_]", "_", k)}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + ",".join(escaped) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prom_value(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def record_metric(
    name: str, value: float = 1, unit: str = "Count", *, tenant: str | None = None, **dimensions: Any
) -> None:
    """Count or observe `value` under `name` (CamelCase, as CloudWatch shows it).

    CloudWatch: without dimensions or tenant it joins the function's metric set (flushed by
    `@metrics.log_metrics`); otherwise it is emitted at once as its own EMF record (a single-metric
    context), so dimensions never leak onto other metrics. `tenant` is EMF metadata there, not a dimension
    (one metric per tenant would multiply CloudWatch's custom metrics; Logs Insights still splits by it).
    The in-process registry gets it too, with `tenant` as a label (what GET /metrics scopes by): unit Count
    adds to a counter, any other unit (Milliseconds, Seconds, Bytes, ...) is an observation of a summary.
    Pass `tenant` for anything done for one tenant; figures without it are shown to admins only."""
    labels = {k: str(v) for k, v in dimensions.items() if v is not None}
    wrong = metric_catalog.problem(name, set(dimensions))
    if wrong:  # never fails the request; tests/unit/test_metric_catalog.py keeps the calls right
        logger.warning("metric not in the catalogue", extra={"metric": name, "problem": wrong})
    REGISTRY.record(name, float(value), unit, {**labels, TENANT_LABEL: tenant} if tenant else labels)
    try:
        if not labels and not tenant:
            metrics.add_metric(name=name, unit=unit, value=value)
        elif not is_metrics_disabled():
            with single_metric(
                name=name,
                unit=unit,  # type: ignore[arg-type]
                value=value,
                namespace=metrics.namespace,
                default_dimensions={"service": SERVICE, **labels},
            ) as metric:
                if tenant:
                    metric.add_metadata(TENANT_LABEL, tenant)
    except Exception:  # metrics must never fail the request that records them
        logger.warning("metric not recorded", extra={"metric": name}, exc_info=True)

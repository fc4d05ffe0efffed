"""Every metric the code emits is in sandboxcp.metric_catalog with the dimensions it is emitted with, and
every catalogued metric is emitted somewhere: read from the code itself (its AST), not from a list here."""

from __future__ import annotations

import ast
from pathlib import Path

from sandboxcp import metric_catalog, observability

REPO = Path(__file__).resolve().parents[2]
NOT_DIMENSIONS = {"value", "unit", "tenant"}
OBSERVABILITY = "observability.py"  # record_metric's own add_metric call (the name is its argument)


def _emitting_calls() -> list[tuple[str, str, set[str]]]:
    """(where, metric name, dimension names) of every record_metric(...) and metrics.add_metric(...)."""
    found = []
    for path in [*(REPO / "functions").glob("*.py"), *(REPO / "layers/python/sandboxcp").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if isinstance(func, ast.Name) and func.id == "record_metric":
                name = node.args[0]
                assert isinstance(name, ast.Constant), f"{where}: metric names are literals"
                dims = {k.arg for k in node.keywords if k.arg and k.arg not in NOT_DIMENSIONS}
                found.append((where, str(name.value), dims))
            elif (
                isinstance(func, ast.Attribute)
                and func.attr == "add_metric"
                and path.name != "observability.py"
            ):
                (name_kw,) = [k.value for k in node.keywords if k.arg == "name"]
                assert isinstance(name_kw, ast.Constant), f"{where}: metric names are literals"
                found.append((where, str(name_kw.value), set()))
    return found


def test_every_emitted_metric_is_catalogued_with_its_dimensions() -> None:
    calls = _emitting_calls()
    assert len(calls) >= 10
    problems = [f"{where}: {metric_catalog.problem(name, dims)}" for where, name, dims in calls]
    assert [p for p in problems if not p.endswith(": None")] == []


def test_every_catalogued_metric_is_emitted() -> None:
    emitted = {name for _, name, _ in _emitting_calls()}
    assert set(metric_catalog.CATALOG) - emitted == set()


def test_the_powertools_namespace_and_service_are_the_catalogues() -> None:
    assert observability.metrics.namespace == metric_catalog.NAMESPACE
    assert observability.SERVICE == metric_catalog.SERVICE


def test_problem_names_wrong_names_and_dimension_sets() -> None:
    assert metric_catalog.problem("LaunchLatency", {"runtime"}) is None
    assert "not in" in str(metric_catalog.problem("LaunchLatencyMs", {"runtime"}))
    assert "dimensions" in str(metric_catalog.problem("SessionsCreated", set()))

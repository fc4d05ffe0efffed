"""moto's Step Functions interpreter with each JSONPath and each state machine definition parsed once per
process, and one Lambda client per process, not one at every use.

- moto evaluates every `$.x` of a state machine (`Parameters`, `ResultSelector`, `ResultPath`, the
  context's `$$.Task.Token`) with `jsonpath_ng.parse`, which builds a new PLY parser, LALR tables
  included, on each call: 7-40 ms a path on these 2 cores. The launch workflow evaluates seven paths, so
  the local stack spent 50-280 ms of each cold launch there, between the workflow's Lambda invokes
  (found with py-spy). A parsed path is a tree that `find` only reads, so one per distinct path string
  serves every execution and thread.
- moto also parses the whole definition with its ANTLR grammar at every StartExecution (10-35 ms for the
  launch workflow here), then evaluates the resulting component tree against a per-execution
  `Environment`. The tree holds no execution state (the environment does), except a lazily drawn
  `heap_key` per component (retry counters' key in the environment's heap): it is drawn for every
  component before the tree is shared, so two executions' first retries cannot draw different keys.
- moto builds a new boto3 Lambda client for every Lambda task it runs (5-10 ms here: endpoint, SSL
  context, event hooks). One client per region serves them all: boto3 clients are thread-safe.

Step Functions in AWS spends nothing of the kind; this keeps the local stack's launch near it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

_installed: dict[str, Any] = {}


def install() -> None:
    """Idempotent; for the local stack's process (where moto's Step Functions runs)."""
    import jsonpath_ng
    import jsonpath_ng.ext
    import moto.stepfunctions.parser.asl.component.common.path.result_path as result_path
    import moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils as lambda_eval
    import moto.stepfunctions.parser.asl.utils.json_path as json_path
    import moto.stepfunctions.parser.backend.execution_worker as execution_worker

    if _installed:
        return
    # moto imports the extended parser for reads and the basic one for ResultPath; each keeps its own.
    _installed["ext"] = json_path.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)
    _installed["base"] = result_path.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.parse)
    # Only the per-execution parse is replaced; CreateStateMachine still validates with moto's own.
    programs = _ProgramCache(execution_worker.AmazonStateLanguageParser)
    execution_worker.AmazonStateLanguageParser = programs  # type: ignore[misc,assignment]
    _installed["definition"] = programs
    _installed["lambda_client"] = lambda_eval.boto_client_for = _client_per_region(
        lambda_eval.boto_client_for
    )


def parses() -> dict[str, int]:
    """Parses (or clients built) so far per kind (cache misses): what a test reads."""
    return {
        kind: cache.misses if isinstance(cache, _ProgramCache) else cache.cache_info().misses
        for kind, cache in _installed.items()
    }


def _client_per_region(build: Any) -> Any:
    """moto's `boto_client_for(region, service, state_credentials)`, built once per region, service and
    where moto sends it (its server's port, or its in-process stubber). moto's own ignores the task's
    credentials, so a shared client changes nothing there."""
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port

    @functools.lru_cache(maxsize=64)
    def cached(region: str, service: str, stubbed: bool, port: str) -> Any:
        return build(region, service)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        return cached(region, service, botocore_stubber.enabled, moto_server_port())

    boto_client_for.cache_info = cached.cache_info  # type: ignore[attr-defined]
    return boto_client_for


class _ProgramCache:
    """Stands in for moto's `AmazonStateLanguageParser` where executions start: `parse` answers from a
    cache keyed by the definition's text (a new definition is a new key; nothing goes stale)."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self._programs: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self.misses = 0

    def parse(self, definition: str) -> tuple[Any, Any]:
        with self._lock:  # one parse per definition, even when executions start together
            parsed = self._programs.get(definition)
            if parsed is None:
                parsed = self._parser.parse(definition)
                _draw_heap_keys(parsed[0])
                self._programs[definition] = parsed
                self.misses += 1
            return parsed


def _draw_heap_keys(program: Any) -> None:
    """Touch `heap_key` on every evaluation component reachable from `program`."""
    for component in components(program):
        _ = component.heap_key


def components(program: Any) -> Iterator[Any]:
    """Every evaluation component reachable from `program` (a parsed state machine), once each."""
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    stack = [program]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, EvalComponent):
            yield node
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple, set, frozenset)):
            stack.extend(node)
        elif hasattr(node, "__dict__") and type(node).__module__.startswith("moto."):
            stack.extend(vars(node).values())

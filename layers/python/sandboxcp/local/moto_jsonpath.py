"""moto's Step Functions interpreter with each JSONPath parsed once per process, not at every use.

moto evaluates every `$.x` of a state machine (`Parameters`, `ResultSelector`, `ResultPath`, the
context's `$$.Task.Token`) with `jsonpath_ng.parse`, which builds a new PLY parser, LALR tables
included, on each call: 7-40 ms a path on these 2 cores. The launch workflow evaluates seven paths, so
the local stack spent 50-280 ms of each cold launch there, between the workflow's Lambda invokes
(found with py-spy; Step Functions in AWS spends nothing of the kind). A parsed path is a tree that
`find` only reads, so one per distinct path string serves every execution and thread.
"""

from __future__ import annotations

import functools
from typing import Any

_installed: dict[str, Any] = {}


def install() -> None:
    """Idempotent; for the local stack's process (where moto's Step Functions runs)."""
    import jsonpath_ng
    import jsonpath_ng.ext
    import moto.stepfunctions.parser.asl.component.common.path.result_path as result_path
    import moto.stepfunctions.parser.asl.utils.json_path as json_path

    if _installed:
        return
    # moto imports the extended parser for reads and the basic one for ResultPath; each keeps its own.
    _installed["ext"] = json_path.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)
    _installed["base"] = result_path.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.parse)


def parses() -> dict[str, int]:
    """Parser builds so far per kind (cache misses): what a test reads."""
    return {kind: parse.cache_info().misses for kind, parse in _installed.items()}

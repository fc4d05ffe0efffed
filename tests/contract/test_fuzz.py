"""Contract fuzzing: schemathesis (Python API, its run engine) against the committed public document
(docs/openapi.json) on a real local stack with process sandboxes.

Every operation goes through all four phases: the schema's examples, coverage (boundary and invalid values,
unexpected methods), fuzzing (random positive and negative data), and stateful sequences that follow the
links between operations (create a session, run code in it, read the result...). The run is bounded (a
fixed number of cases per operation, one worker, a fixed seed) and checks every response for:

- not_a_server_error: no 5xx;
- status_code_conformance: the status is one the document declares for the operation;
- content_type_conformance: the media type is the declared one;
- response_schema_conformance: the body matches the declared schema.

Any failure fails the test. The summary (printed in pytest's closing summary, and the failure message)
counts the status codes per operation and groups the failures by check and operation, with a curl command
to reproduce each.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import Status, from_schema
from schemathesis.engine import events as st_events

from tests.contract.conftest import FUZZ_SUMMARY
from tests.e2e.conftest import Stack, start_stack, stop_stack

pytestmark = pytest.mark.e2e

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
SEED = 20261130
# Cases per operation in each of the examples, coverage and fuzzing phases (the coverage phase adds its own
# boundary cases): about 3,000 requests in all, 2-3 minutes on 2 cores.
MAX_EXAMPLES = 60
STATEFUL_STEPS = 10


@dataclass
class Findings:
    requests: int = 0
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    # (check, operation, failure title) -> (message, curl, phase, count)
    failures: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    phases: dict[str, str] = field(default_factory=dict)
    stop_reason: str = ""
    running_time: float = 0.0

    def record(self, event: st_events.ScenarioFinished) -> None:
        recorder = event.recorder
        for case_id, node in recorder.cases.items():
            response = recorder.find_response(case_id=case_id)
            if response is not None:
                self.requests += 1
                self.statuses[node.value.operation.label][response.status_code] += 1
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status != Status.FAILURE or check.failure_info is None:
                    continue
                failure = check.failure_info.failure
                case = recorder.cases.get(case_id)
                operation = case.value.operation.label if case is not None else recorder.label
                key = (check.name, operation, failure.title)
                if key in self.failures:
                    self.failures[key][3] += 1
                else:
                    sample = check.failure_info.code_sample
                    self.failures[key] = [failure.message, sample, event.phase.value, 1]

    def summary(self) -> str:
        lines = [
            f"schemathesis {schemathesis.__version__}: {self.requests} requests in "
            f"{self.running_time:.0f} s, seed {SEED}, stop: {self.stop_reason}",
            "phases: " + ", ".join(f"{name} {status}" for name, status in self.phases.items()),
            "status codes per operation:",
        ]
        for operation in sorted(self.statuses):
            counts = " ".join(f"{code}x{n}" for code, n in sorted(self.statuses[operation].items()))
            lines.append(f"  {operation}: {counts}")
        if not self.failures and not self.errors:
            lines.append("no failures")
        by_check: dict[str, list[tuple[str, str, list[Any]]]] = defaultdict(list)
        for (check, operation, title), data in sorted(self.failures.items()):
            by_check[check].append((operation, title, data))
        for check, found in by_check.items():
            lines.append(f"FAILED {check}: {len(found)} distinct failure(s)")
            for operation, title, (message, sample, phase, count) in found:
                detail = " ".join(str(message).split())[:400]
                lines.append(f"  - {operation} [{phase}, {count}x] {title}: {detail}")
                lines.append(f"      {' '.join(str(sample).split())[:600]}")
        for error in self.errors:
            lines.append(f"ERROR {error}")
        return "\n".join(lines)


class StackLog:
    """The stack's output file (tests/e2e/conftest.py writes it: thousands of requests log more than a
    pipe holds)."""

    def __init__(self, stack: Stack) -> None:
        assert stack.log_path is not None
        self.path = stack.log_path

    def unhandled(self) -> list[str]:
        """The handlers' 'unhandled error' records (the 500s' stack traces are in the file)."""
        text = self.path.read_text(errors="replace") if self.path.exists() else ""
        return [line[:300] for line in text.splitlines() if '"unhandled error"' in line]


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackLog]]:
    stack = start_stack(tmp_path_factory.mktemp("fuzz"))
    yield stack, StackLog(stack)
    stop_stack(stack)


def fuzz(base_url: str, api_key: str) -> Findings:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": f"{base_url}/api/v1",
            "workers": 1,
            "continue-on-failure": True,
            "cache": {"enabled": False},
            "auth": {"openapi": {"apiKey": {"bearer": api_key}}},
            "generation": {"max-examples": MAX_EXAMPLES, "no-shrink": True, "database": "none"},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "request-timeout": 40,
        }
    )
    schema = schemathesis.openapi.from_path(DOCUMENT, config=config)
    findings = Findings()
    for event in from_schema(schema).execute():
        if isinstance(event, st_events.ScenarioFinished):
            findings.record(event)
        elif isinstance(event, st_events.NonFatalError):
            findings.errors.append(f"{event.label}: {' '.join(str(event.value).split())[:400]}")
        elif isinstance(event, st_events.FatalError):
            raise event.exception
        elif isinstance(event, st_events.PhaseFinished):
            findings.phases[event.phase.name.value] = event.status.value
        elif isinstance(event, st_events.EngineFinished):
            findings.stop_reason = event.stop_reason.value
            findings.running_time = event.running_time
    return findings


def test_public_api_conforms_to_its_document(
    fuzz_stack: tuple[Stack, StackLog], request: pytest.FixtureRequest
) -> None:
    stack, log = fuzz_stack
    started = time.monotonic()
    findings = fuzz(stack.url, stack.admin_key)
    report = findings.summary()
    unhandled = log.unhandled()
    if unhandled:
        report += f"\nunhandled errors in the stack ({len(unhandled)}, full log {log.path}):\n"
        report += "\n".join(f"  {line}" for line in unhandled[:10])
    report += f"\n(fuzzing took {time.monotonic() - started:.0f} s)"
    request.config.stash[FUZZ_SUMMARY] = report
    assert findings.requests > 1000, f"too few requests to mean anything:\n{report}"
    assert not findings.failures and not findings.errors, report

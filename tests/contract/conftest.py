"""Prints the contract fuzzing summary (tests/contract/test_fuzz.py) in pytest's closing summary, passed or
failed, so a plain `./scripts/test.sh` shows what was fuzzed."""

from __future__ import annotations

import pytest

FUZZ_SUMMARY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    summary = config.stash.get(FUZZ_SUMMARY, None)
    if summary:
        terminalreporter.write_sep("-", "contract fuzzing (schemathesis, docs/openapi.json)")
        for line in summary.splitlines():
            terminalreporter.write_line(line)

"""Options of the whole suite (an option must be declared in a conftest pytest loads first)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runtime",
        default="all",
        help="the sandbox runtimes of the e2e suite: 'all' (default) or a comma list of names from "
        "tests/e2e/conftest.py RUNTIMES (process, docker, ecs, ...)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "runtimes(*names): the only runtimes an e2e module runs on")

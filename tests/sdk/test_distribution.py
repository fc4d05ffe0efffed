"""The `sandboxcp-client` distribution stays light: it declares httpx and pydantic only, and its modules
import nothing else outside the standard library (so neither boto3 nor powertools can creep in)."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
ALLOWED = {"httpx", "pydantic"}
FORBIDDEN = {"boto3", "botocore", "aws-lambda-powertools", "aws_lambda_powertools", "pynamodb", "sandboxcp"}


def test_pyproject_declares_httpx_and_pydantic_only():
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "sandboxcp-client"
    assert {Requirement(r).name for r in project["dependencies"]} == ALLOWED
    assert not project.get("optional-dependencies")


def test_the_installed_distribution_requires_the_same():
    requires = [Requirement(r) for r in metadata.requires("sandboxcp-client") or []]
    assert {r.name for r in requires if r.marker is None} == ALLOWED
    assert not {r.name.lower() for r in requires} & FORBIDDEN


def test_modules_import_only_the_stdlib_httpx_and_pydantic():
    package = CLIENT / "sandboxcp_client"
    outside: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "sandboxcp_client":
                    outside.add(top)
    assert outside == ALLOWED
    assert (package / "py.typed").exists()

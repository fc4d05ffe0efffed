"""Synthesize the CDK app once per test session; the infra tests read the one template it produces."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
# Node 20 prints an end-of-life banner on every jsii start unless silenced (set before aws_cdk is imported).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# `python3 infra/app.py` finds sandboxcp_infra next to it; give the tests the same import path.
if str(INFRA_DIR) not in sys.path:
    sys.path.insert(0, str(INFRA_DIR))


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context (what `cdk synth` uses), with bundling skipped: no pip install in tests."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return {**context, "aws:cdk:bundling-stacks": [], **overrides}


def load_cdk_app_module() -> Any:
    """infra/app.py under its own module name (a bare `app` could shadow other packages)."""
    spec = importlib.util.spec_from_file_location("sandboxcp_cdk_app", INFRA_DIR / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Synthesized:
    stack: Any  # sandboxcp_infra.SandboxControlPlaneStack
    template: dict[str, Any]  # the CloudFormation template as JSON
    template_path: Path
    outdir: Path

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def logical_id(self, construct: Any) -> str:
        """Logical id of an L2 construct's CloudFormation resource (or of a CfnResource itself)."""
        cfn = getattr(construct.node, "default_child", None) or construct
        return str(self.stack.resolve(cfn.logical_id))


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from aws_cdk import App

    outdir = tmp_path_factory.mktemp("cdk.out")
    app_module = load_cdk_app_module()
    app, stack = app_module.build_app(App(context=cdk_context(), outdir=str(outdir)))
    app.synth()  # also runs cdk-nag: an unacknowledged finding raises here
    template_path = outdir / f"{stack.stack_name}.template.json"
    return Synthesized(stack, json.loads(template_path.read_text()), template_path, outdir)

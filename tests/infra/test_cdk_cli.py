"""`cdk synth` with the CDK CLI from npm works offline (scripts/setup.sh runs `npm install`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_RESOURCES_PER_STACK = 300


def test_npx_cdk_synth_offline(tmp_path: Path) -> None:
    cli = ROOT / "node_modules" / ".bin" / "cdk"
    if not cli.exists():
        pytest.fail("the CDK CLI is not installed: run scripts/setup.sh (npm install)")
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    out = subprocess.run(
        # alarm_email is required: a deploy names an address or opts out, as here.
        [
            str(cli),
            "synth",
            "-q",
            "-c",
            "bundling=false",
            "-c",
            "alarm_email=none",
            "--no-notices",
            "-o",
            str(tmp_path / "cdk.out"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    parent = tmp_path / "cdk.out" / "SandboxControlPlane.template.json"
    nested = list((tmp_path / "cdk.out").glob("*.nested.template.json"))
    assert parent.is_file() and nested, "no templates synthesized"
    counts = {t.name: len(json.loads(t.read_text())["Resources"]) for t in [parent, *nested]}
    assert max(counts.values()) <= MAX_RESOURCES_PER_STACK, counts
    state_machines = [
        r
        for t in [parent, *nested]
        for r in json.loads(t.read_text())["Resources"].values()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    assert state_machines


def test_synth_without_alarm_email_fails_clearly(tmp_path: Path) -> None:
    import sys

    from tests.infra.conftest import INFRA_DIR, cdk_context

    context = cdk_context()
    del context["alarm_email"]
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [sys.executable, str(INFRA_DIR / "app.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "context 'alarm_email' is required" in result.stderr
    assert "Traceback" not in result.stderr

"""`cdk synth` with the CDK CLI from npm works offline (scripts/setup.sh runs `npm install`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
        [str(cli), "synth", "-q", "-c", "bundling=false", "--no-notices", "-o", str(tmp_path / "cdk.out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    templates = list((tmp_path / "cdk.out").glob("*.template.json"))
    assert templates, "no template synthesized"
    resources = json.loads(templates[0].read_text())["Resources"]
    assert sum(r["Type"] == "AWS::StepFunctions::StateMachine" for r in resources.values()) >= 1

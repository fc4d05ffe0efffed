"""CDK entry point (`cdk.json`: "python3 infra/app.py"). Context flags: see docs/deploy.md."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment

from sandboxcp_infra import ConfigError, DeploymentConfig, SandboxControlPlaneStack
from sandboxcp_infra.nag import add_checks

STACK_NAME = "SandboxControlPlane"
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
# CDK's context key listing the stacks whose assets get bundled (cx-api BUNDLING_STACKS).
BUNDLING_STACKS = "aws:cdk:bundling-stacks"


def default_context() -> dict[str, Any]:
    """cdk.json's context. The CLI passes it (plus any `-c` flags, which win over these defaults); reading it
    here too makes a bare `python3 infra/app.py` synthesize the same template."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text()).get("context", {})
    return context


def lookup_environment(config: DeploymentConfig) -> Environment | None:
    """Environment-agnostic (one template for any account and region) unless something must be looked up:
    an imported VPC (`vpc_id`) is read at synth from the account and region the CDK CLI resolves."""
    if config.vpc_id is None:
        return None
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    if not account or not region:
        raise ConfigError(
            "context 'vpc_id' is looked up in the target account and region: run `npx cdk synth` with AWS "
            "credentials (or set CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION)"
        )
    return Environment(account=account, region=region)


def build_app(app: App | None = None, env: Environment | None = None) -> tuple[App, SandboxControlPlaneStack]:
    """The app with its one stack and cdk-nag attached; raises ConfigError for bad context."""
    app = app or App(context=default_context(), outdir=os.environ.get("CDK_OUTDIR", "cdk.out"))
    config = DeploymentConfig.from_context(app.node)
    if not config.bundling:
        # The CLI refuses user context keys starting with `aws:`, so `-c bundling=false` sets this one.
        app.node.set_context(BUNDLING_STACKS, [])
    stack = SandboxControlPlaneStack(
        app,
        STACK_NAME,
        config=config,
        env=env or lookup_environment(config),
        description="Sandbox Control Plane: sessions, untrusted code execution, workspaces",
    )
    add_checks(app)
    return app, stack


def main() -> None:
    try:
        app, _ = build_app()
    except ConfigError as error:
        sys.exit(f"sandboxcp infra: {error}")
    app.synth()


if __name__ == "__main__":
    main()

"""CDK entry point (`cdk.json`: "python3 infra/app.py"). Context flags: see docs/deploy.md."""

from __future__ import annotations

import sys

from aws_cdk import App

from sandboxcp_infra import ConfigError, DeploymentConfig, SandboxControlPlaneStack
from sandboxcp_infra.nag import add_checks

STACK_NAME = "SandboxControlPlane"


def build_app(app: App | None = None) -> tuple[App, SandboxControlPlaneStack]:
    """The app with its one stack and cdk-nag attached; raises ConfigError for bad context."""
    app = app or App()
    config = DeploymentConfig.from_context(app.node)
    stack = SandboxControlPlaneStack(
        app,
        STACK_NAME,
        config=config,
        # Environment-agnostic: nothing here looks up the account, so one template serves every account/region.
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

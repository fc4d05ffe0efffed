"""CDK constructs for the Sandbox Control Plane: one thin stack (stack.py), one construct per concern.

The route table (sandboxcp.routes) and the pynamodb models (sandboxcp.adapters.tables) are the inputs: the
constructs derive functions, APIs, tables and IAM grants from them instead of repeating them."""

from sandboxcp_infra.config import ConfigError, DeploymentConfig
from sandboxcp_infra.stack import SandboxControlPlaneStack

__all__ = ["ConfigError", "DeploymentConfig", "SandboxControlPlaneStack"]

"""Small naming helpers shared by the constructs."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import IConstruct

from sandboxcp.settings import Settings


def pascal(name: str) -> str:
    """`internal_container_ready` -> `InternalContainerReady`: construct ids that read like the module."""
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_") if part)


def env_var(settings_field: str) -> str:
    """The environment variable a Settings field reads (its pydantic alias), so infra and code agree."""
    alias = Settings.model_fields[settings_field].alias
    if not alias:
        raise KeyError(f"Settings.{settings_field} has no environment alias")
    return alias


def deployment_name(scope: IConstruct) -> str:
    """The top-level stack's name, also from inside a nested stack (whose own name CloudFormation makes up):
    what API and dashboard names start with, so they read the same whichever stack holds them."""
    stack = Stack.of(scope)
    while stack.nested_stack_parent is not None:
        stack = stack.nested_stack_parent
    return stack.stack_name

"""Deployment settings from CDK context (`cdk.json` or `cdk synth -c key=value`), validated at synth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Node

# Runtimes a cloud deployment can drive; `process` exists only for local mode (`sandboxcp local`).
DEPLOYABLE_RUNTIMES = ("ecs", "eks", "docker")
DEFAULT_RUNTIME = "ecs"


class ConfigError(ValueError):
    """A context value that cannot be deployed; raised at synth, before anything reaches CloudFormation."""


@dataclass(frozen=True)
class DeploymentConfig:
    runtime: str = DEFAULT_RUNTIME
    # Keep tables and the workspace bucket when the stack is deleted (production) or delete them (dev stacks).
    retain_data: bool = True
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    # API Gateway logs through one account-wide role; turn off where the account already has one configured.
    api_gateway_cloudwatch_role: bool = True
    # False skips building the dependencies layer (a pip install): quick synths and diffs, never deploys.
    bundling: bool = True

    @property
    def data_removal_policy(self) -> RemovalPolicy:
        return RemovalPolicy.RETAIN if self.retain_data else RemovalPolicy.DESTROY

    @classmethod
    def from_context(cls, node: Node) -> DeploymentConfig:
        runtime = str(node.try_get_context("runtime") or DEFAULT_RUNTIME)
        if runtime not in DEPLOYABLE_RUNTIMES:
            raise ConfigError(
                f"context 'runtime' is {runtime!r}; allowed: {', '.join(DEPLOYABLE_RUNTIMES)} "
                f"(default {DEFAULT_RUNTIME}), e.g. `cdk synth -c runtime=ecs`"
            )
        return cls(
            runtime=runtime,
            retain_data=_bool(node, "retain_data", default=True),
            log_retention=_retention(node),
            api_gateway_cloudwatch_role=_bool(node, "api_gateway_cloudwatch_role", default=True),
            bundling=_bool(node, "bundling", default=True),
        )


def _bool(node: Node, key: str, *, default: bool) -> bool:
    # `-c key=false` arrives as the string "false"; cdk.json gives a JSON boolean.
    value: Any = node.try_get_context(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(f"context {key!r} must be true or false, got {value!r}")


# The retention periods offered here; CloudWatch Logs accepts more, these cover the usual choices.
_RETENTION_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def _retention(node: Node) -> logs.RetentionDays:
    value: Any = node.try_get_context("log_retention_days")
    if value is None:
        return DeploymentConfig.log_retention
    try:
        return _RETENTION_BY_DAYS[int(value)]
    except (ValueError, KeyError):
        allowed = ", ".join(str(days) for days in _RETENTION_BY_DAYS)
        raise ConfigError(f"context 'log_retention_days' must be one of {allowed}; got {value!r}") from None

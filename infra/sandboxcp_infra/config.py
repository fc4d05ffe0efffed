"""Deployment settings from CDK context (`cdk.json` or `cdk synth -c key=value`), validated at synth."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Node

from sandboxcp.services.warm_pool import DEFAULT_POOLS, MAX_CEILING, MAX_FLOOR
from sandboxcp.settings import Settings

# Runtimes a cloud deployment can drive; `process` exists only for local mode (`sandboxcp local`).
DEPLOYABLE_RUNTIMES = ("ecs", "eks", "docker")
DEFAULT_RUNTIME = "ecs"
# The code's own defaults (sandboxcp/settings.py), so infra and functions agree when no context is given.
DEFAULT_TASK_DEFINITION_PREFIX = str(Settings.model_fields["ecs_task_definition_prefix"].default)
DEFAULT_EKS_NAMESPACE = str(Settings.model_fields["eks_namespace"].default)

EKS_REQUIRED = ("eks_cluster_name", "eks_endpoint", "eks_ca_data", "vpc_id")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SG_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# `-c alarm_email=none`: the explicit choice of a deployment whose alarm topic nobody subscribes to by email.
NO_ALARM_EMAIL = "none"
# SANDBOX_WARM_POOL values: no pool at all (the deployed default), and the context word for the seed's sizes.
NO_WARM_POOL = "none"
SEED_WARM_POOL = "seed"
_WARM_POOL_ITEM = re.compile(r"^([a-z0-9][a-z0-9-]*)=([0-9]{1,3})(?::([0-9]{1,3}))?$")


class ConfigError(ValueError):
    """A context value that cannot be deployed; raised at synth, before anything reaches CloudFormation."""


@dataclass(frozen=True)
class EksConfig:
    """The platform team's cluster the sandboxes run on (imported, never created by this stack)."""

    cluster_name: str
    endpoint: str
    ca_data: str  # base64 PEM, as in kubeconfig's certificate-authority-data
    namespace: str = DEFAULT_EKS_NAMESPACE
    cluster_security_group_id: str | None = None  # the cluster security group (pods without SGs use it)
    # The region's S3 prefix list CIDRs, comma-separated (EKS_S3_CIDRS): where sandboxes without network sync
    # their workspace. CDK cannot read a prefix list's entries at synth, so the operator passes them.
    s3_cidrs: str = ""


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
    # An existing VPC to use (looked up at synth: needs the account and region) instead of creating one.
    vpc_id: str | None = None
    # ecs: task definition families are `<prefix><template id>`.
    ecs_task_definition_prefix: str = DEFAULT_TASK_DEFINITION_PREFIX
    eks: EksConfig | None = None
    # docker: the default node's engine, `tcp://<host>:<port>` (TLS); more nodes live in runtime_nodes.
    docker_host: str | None = None
    # Where alarm notifications go (an email subscription to the alarm topic); None only when the deployer
    # opted out explicitly (`-c alarm_email=none`): an unwatched alarm topic is a choice, never a default.
    alarm_email: str | None = None
    # A WAF web ACL with a rate-based rule per client IP on the public API's stage (`-c waf=true`).
    waf: bool = False
    # SANDBOX_WARM_POOL of every function: "none" (no warm sandboxes, every launch is cold) unless the
    # operator asks for pools: `-c warm_pool=seed` (the seed's sizes) or `template=N` /
    # `template=FLOOR:CEILING` items.
    warm_pool: str = NO_WARM_POOL

    @property
    def data_removal_policy(self) -> RemovalPolicy:
        """Kept on stack updates and deletes, but removed when the stack's *creation* fails and rolls
        back (CloudFormation's RetainExceptOnCreate): a failed first deploy leaves no debris."""
        return RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if self.retain_data else RemovalPolicy.DESTROY

    @classmethod
    def from_context(cls, node: Node) -> DeploymentConfig:
        runtime = str(node.try_get_context("runtime") or DEFAULT_RUNTIME)
        if runtime not in DEPLOYABLE_RUNTIMES:
            raise ConfigError(
                f"context 'runtime' is {runtime!r}; allowed: {', '.join(DEPLOYABLE_RUNTIMES)} "
                f"(default {DEFAULT_RUNTIME}), e.g. `cdk synth -c runtime=ecs`"
            )
        vpc_id = _text(node, "vpc_id")
        if vpc_id is not None and not _VPC_ID.match(vpc_id):
            raise ConfigError(f"context 'vpc_id' must look like vpc-0123456789abcdef0; got {vpc_id!r}")
        prefix = _text(node, "ecs_task_definition_prefix") or DEFAULT_TASK_DEFINITION_PREFIX
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", prefix):
            raise ConfigError(
                "context 'ecs_task_definition_prefix' may hold letters, digits, '-' and '_' only; "
                f"got {prefix!r}"
            )
        return cls(
            runtime=runtime,
            retain_data=_bool(node, "retain_data", default=True),
            log_retention=_retention(node),
            api_gateway_cloudwatch_role=_bool(node, "api_gateway_cloudwatch_role", default=True),
            bundling=_bool(node, "bundling", default=True),
            vpc_id=vpc_id,
            ecs_task_definition_prefix=prefix,
            eks=_eks(node) if runtime == "eks" else None,
            docker_host=_docker_host(node) if runtime == "docker" else None,
            alarm_email=_alarm_email(node),
            waf=_bool(node, "waf", default=False),
            warm_pool=_warm_pool(node),
        )


def _text(node: Node, key: str) -> str | None:
    value: Any = node.try_get_context(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _alarm_email(node: Node) -> str | None:
    email = _text(node, "alarm_email")
    if email is None:
        raise ConfigError(
            "context 'alarm_email' is required: the address the alarm topic notifies, e.g. `cdk deploy "
            f"-c alarm_email=oncall@example.com`; or `-c alarm_email={NO_ALARM_EMAIL}` to deploy without an "
            "email subscription (then subscribe something else to the AlarmTopicArn output); see "
            "docs/deploy.md"
        )
    if email.lower() == NO_ALARM_EMAIL:
        return None
    if not _EMAIL.match(email):
        raise ConfigError(
            f"context 'alarm_email' must be an email address or {NO_ALARM_EMAIL!r}; got {email!r}"
        )
    return email


def _eks(node: Node) -> EksConfig:
    missing = [key for key in EKS_REQUIRED if _text(node, key) is None]
    if missing:
        raise ConfigError(
            f"runtime=eks runs sandboxes on an existing cluster and needs context {', '.join(missing)}: "
            "the cluster's name, API endpoint, certificate authority data (base64, as in kubeconfig) and "
            "the VPC its pods run in, e.g. `cdk synth -c runtime=eks -c eks_cluster_name=platform "
            "-c eks_endpoint=https://ABC.gr7.<region>.eks.amazonaws.com -c eks_ca_data=LS0t... "
            "-c vpc_id=vpc-0123456789abcdef0` (`aws eks describe-cluster --name platform` prints them); "
            "see docs/deploy.md"
        )
    endpoint = str(_text(node, "eks_endpoint"))
    if urlsplit(endpoint).scheme != "https":
        raise ConfigError(f"context 'eks_endpoint' must be the cluster's https:// endpoint; got {endpoint!r}")
    namespace = _text(node, "eks_namespace") or DEFAULT_EKS_NAMESPACE
    if not _NAMESPACE.match(namespace):
        raise ConfigError(f"context 'eks_namespace' must be a Kubernetes namespace name; got {namespace!r}")
    cluster_sg = _text(node, "eks_cluster_sg")
    if cluster_sg is not None and not _SG_ID.match(cluster_sg):
        raise ConfigError(f"context 'eks_cluster_sg' must look like sg-0123456789abcdef0; got {cluster_sg!r}")
    return EksConfig(
        s3_cidrs=_cidrs(node, "eks_s3_cidrs"),
        cluster_name=str(_text(node, "eks_cluster_name")),
        endpoint=endpoint,
        ca_data=str(_text(node, "eks_ca_data")),
        namespace=namespace,
        cluster_security_group_id=cluster_sg,
    )


def _cidrs(node: Node, key: str) -> str:
    """Comma-separated CIDRs, normalized to `a/n,b/m` (empty when unset)."""
    value = _text(node, key)
    if value is None:
        return ""
    cidrs = [part.strip() for part in value.split(",") if part.strip()]
    try:
        return ",".join(str(ipaddress.ip_network(cidr)) for cidr in cidrs)
    except ValueError:
        raise ConfigError(
            f"context {key!r} must be comma-separated CIDRs such as 52.216.0.0/15,3.5.0.0/19 (the entries of "
            f"the region's S3 prefix list, docs/deploy.md); got {value!r}"
        ) from None


def _docker_host(node: Node) -> str:
    host = _text(node, "docker_host")
    if host is None:
        raise ConfigError(
            "runtime=docker needs context 'docker_host', the default Docker engine reached over TCP+TLS, "
            "e.g. `cdk synth -c runtime=docker -c docker_host=tcp://10.0.1.10:2376`; see docs/deploy.md"
        )
    parts = urlsplit(host)
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        raise ConfigError(
            f"context 'docker_host' must be tcp://<host>:<port> (functions reach engines over TLS, never a "
            f"unix socket); got {host!r}"
        )
    return host


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


def _warm_pool(node: Node) -> str:
    """SANDBOX_WARM_POOL as deployed. Unset or `none`: no pool. An empty value would make the functions fall
    back to the seed's sizes (warm_pool.DEFAULT_POOLS: 35 sandboxes running around the clock), so that is only
    ever deployed when asked for by name: `seed`. Otherwise `template=N` (floor N, ceiling 2N) or
    `template=FLOOR:CEILING` items, comma-separated; 0 turns a template's pool off."""
    value = (_text(node, "warm_pool") or NO_WARM_POOL).replace(" ", "")
    if value.lower() == NO_WARM_POOL:
        return NO_WARM_POOL
    if value.lower() == SEED_WARM_POOL:
        return DEFAULT_POOLS
    usage = (
        f"context 'warm_pool' must be {NO_WARM_POOL!r} (the default: no warm sandboxes), {SEED_WARM_POOL!r} "
        f"(the seed's sizes, {DEFAULT_POOLS}) or comma-separated template=N or template=FLOOR:CEILING items "
        f"(floor at most {MAX_FLOOR}, ceiling at most {MAX_CEILING}), e.g. python-basic=2:8,nodejs-basic=1"
    )
    items = value.split(",")
    seen: set[str] = set()
    for item in items:
        match = _WARM_POOL_ITEM.match(item)
        if match is None:
            raise ConfigError(f"{usage}; got {value!r}")
        template_id, floor, ceiling = match.group(1), int(match.group(2)), match.group(3)
        if template_id in seen:
            raise ConfigError(f"{usage}; {template_id!r} is listed twice in {value!r}")
        seen.add(template_id)
        if floor > MAX_FLOOR or (ceiling is not None and not floor <= int(ceiling) <= MAX_CEILING):
            raise ConfigError(f"{usage}; got {item!r}")
    return value

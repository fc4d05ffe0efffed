"""cdk-nag (AwsSolutions) on the app, and one helper so every acknowledgment carries its reason.

Acknowledgments sit next to the resource they excuse (in the construct that makes it) and name the finding as
narrowly as cdk-nag allows, e.g. `AwsSolutions-IAM5[Resource::*]` rather than the whole IAM5 rule."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_checks(app: App) -> None:
    # cdk-nag 3 is a policy-validation plugin: findings not acknowledged fail `cdk synth`.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept `rule` (e.g. "AwsSolutions-APIG3" or "AwsSolutions-IAM5[Resource::*]") on scope and below."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))

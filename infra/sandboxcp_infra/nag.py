"""cdk-nag (AwsSolutions) on the app, and one helper so every acknowledgment carries its reason.

Acknowledgments sit next to the resource they excuse (in the construct that makes it) and name the finding as
narrowly as cdk-nag allows, e.g. `AwsSolutions-IAM5[Resource::*]` rather than the whole IAM5 rule. None is
stack-wide: `acknowledge` refuses a stack or the app as its scope (tests/infra checks the whole tree too)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, CfnElement, Names, Stack, Stage, Token, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_checks(app: App) -> None:
    # cdk-nag 3 is a policy-validation plugin: findings not acknowledged fail `cdk synth`.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept `rule` (e.g. "AwsSolutions-APIG3" or "AwsSolutions-IAM5[Resource::*]") on scope and below."""
    if isinstance(scope, (Stack, Stage)):
        raise ValueError(f"{rule}: acknowledge it on the resource it is about, not on {scope.node.path}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def reference_finding(consumer: IConstruct, target: CfnElement, attribute: str | None = None) -> str:
    """How cdk-nag prints a reference to `target` (its Ref, or Fn::GetAtt `attribute`) made in consumer's
    template: `<Id>` or `<Id.Attr>` within one stack. From a nested stack to a resource of its parent the
    value arrives as a parameter CDK adds to the nested stack, printed `<referenceto<unique id><Ref|Attr>>`
    (aws-cdk-lib core/lib/private/refs.ts, createNestedStackParameter); a wrong guess leaves the finding
    unacknowledged, so the synth fails instead of hiding anything."""
    consumer_stack, target_stack = Stack.of(consumer), Stack.of(target)
    if consumer_stack is target_stack:
        logical_id = target_stack.resolve(target.logical_id)
        return f"<{logical_id}.{attribute}>" if attribute else f"<{logical_id}>"
    if consumer_stack.nested_stack_parent is not target_stack:
        raise ValueError(
            f"{consumer.node.path} references {target.node.path} across stacks other than nested -> parent"
        )
    return f"<referenceto{Names.node_unique_id(target.node)}{attribute or 'Ref'}>"


def arn_prefix_finding(scope: IConstruct, service: str) -> str:
    """How cdk-nag prints the start of an ARN that `Stack.format_arn` builds in scope's stack:
    `arn:<AWS::Partition>:<service>:<AWS::Region>:<AWS::AccountId>:` in an environment-agnostic stack, the
    literal partition, region and account in one bound to an environment (e.g. with `vpc_id`)."""
    stack = Stack.of(scope)

    def shown(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    partition = shown(stack.partition, "Partition")
    return f"arn:{partition}:{service}:{shown(stack.region, 'Region')}:{shown(stack.account, 'AccountId')}:"

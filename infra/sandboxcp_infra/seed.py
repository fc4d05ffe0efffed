"""Seed the templates table once the tables exist: a CloudFormation trigger that invokes `seed_templates`
at the first deploy and again whenever that function's code or configuration changes."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, triggers
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


class SeedTemplates(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, handler: lambda_.Function, after: Sequence[Construct]
    ) -> None:
        super().__init__(scope, construct_id)
        self.trigger = triggers.Trigger(
            self,
            "Trigger",
            handler=handler,
            execute_after=list(after),
            execute_on_handler_change=True,
            # Wait for the result, so a failed seed fails the deploy instead of leaving an empty catalogue.
            invocation_type=triggers.InvocationType.REQUEST_RESPONSE,
            timeout=handler.timeout or Duration.minutes(1),
        )

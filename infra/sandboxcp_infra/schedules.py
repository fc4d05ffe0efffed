"""Periodic jobs from the route table's JOBS (`every_s`), one loop, no job written out by hand.

EventBridge schedules fire at most once a minute. A job every `every_s >= 60` seconds (a multiple of 60) gets
an EventBridge rule that invokes its function. A job every `every_s < 60` seconds (a divisor of 60) gets a
*sweeper*: an Express state machine (infra/statemachines/periodic_job.asl.json) that a `rate(1 minute)` rule
starts; it invokes the function `60 / every_s` times, `every_s` seconds apart, and ends before the next
minute's run. Step Functions bills the Express run by duration and transitions (a minute of waiting costs
next to nothing), where a Lambda sleeping in a loop would bill all its idle time and run into its timeout.

Every rule target retries and then drops the event into one encrypted, TLS-only dead-letter queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from sandboxcp.routes import JOBS, Job
from sandboxcp_infra.nag import acknowledge
from sandboxcp_infra.naming import pascal

ASL_FILE = Path(__file__).resolve().parents[1] / "statemachines" / "periodic_job.asl.json"
EVENTBRIDGE_FLOOR_S = 60
TARGET_RETRIES = 2


def sweeper_substitutions(job: Job, function_arn: str) -> dict[str, str]:
    """The periodic ASL's `${...}` variables for one sub-minute job."""
    every_s = _every_s(job)
    return {
        "JobFunctionArn": function_arn,
        "EverySeconds": str(every_s),
        "Iterations": str(EVENTBRIDGE_FLOOR_S // every_s),
    }


def _every_s(job: Job) -> int:
    every_s = job.every_s
    if every_s is None or every_s <= 0:
        raise ValueError(f"{job.module}: not a periodic job")
    if every_s < EVENTBRIDGE_FLOOR_S and EVENTBRIDGE_FLOOR_S % every_s:
        raise ValueError(f"{job.module}: every_s={every_s} must divide 60 to keep a steady cadence")
    if every_s >= EVENTBRIDGE_FLOOR_S and every_s % EVENTBRIDGE_FLOOR_S:
        raise ValueError(f"{job.module}: every_s={every_s} must be whole minutes (EventBridge's unit)")
    return every_s


class Schedules(Construct):
    """`rules[module]`: the EventBridge rule of each periodic job; `sweepers[module]`: the state machine of
    each sub-minute one; `dead_letter_queue`: where targets' undeliverable events go."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.Function],
        log_retention: logs.RetentionDays,
        jobs: Sequence[Job] = JOBS,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the schedule rules' targets (EventBridge "
            "DeadLetterConfig), which cdk-nag cannot see; it has an alarm on its depth.",
        )
        self.rules: dict[str, events.Rule] = {}
        self.sweepers: dict[str, sfn.StateMachine] = {}
        self.job_functions: dict[str, lambda_.Function] = {}

        for job in jobs:
            if job.every_s is None:
                continue
            every_s = _every_s(job)
            function = functions[job.module]
            self.job_functions[job.module] = function
            name = pascal(job.module)
            target: events.IRuleTarget
            if every_s < EVENTBRIDGE_FLOOR_S:
                sweeper = self._sweeper(name, job, function, log_retention)
                self.sweepers[job.module] = sweeper
                target = targets.SfnStateMachine(
                    sweeper,
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=TARGET_RETRIES,
                    # A start that cannot happen within the minute is superseded by the next minute's.
                    max_event_age=Duration.minutes(1),
                )
                schedule = events.Schedule.rate(Duration.minutes(1))
                description = f"Start the {job.module} sweeper every minute (runs it every {every_s} s)"
            else:
                target = targets.LambdaFunction(
                    function, dead_letter_queue=self.dead_letter_queue, retry_attempts=TARGET_RETRIES
                )
                schedule = events.Schedule.rate(Duration.minutes(every_s // EVENTBRIDGE_FLOOR_S))
                description = f"Run {job.module} every {every_s // EVENTBRIDGE_FLOOR_S} min"
            self.rules[job.module] = events.Rule(
                self, f"{name}Schedule", schedule=schedule, targets=[target], description=description
            )

    def _sweeper(
        self, name: str, job: Job, function: lambda_.Function, log_retention: logs.RetentionDays
    ) -> sfn.StateMachine:
        log_group = logs.LogGroup(
            self, f"{name}SweeperLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        sweeper = sfn.StateMachine(
            self,
            f"{name}Sweeper",
            comment=f"Invoke {job.module} every {job.every_s} s for one minute",
            definition_body=sfn.DefinitionBody.from_file(str(ASL_FILE)),
            definition_substitutions=sweeper_substitutions(job, function.function_arn),
            state_machine_type=sfn.StateMachineType.EXPRESS,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        # The job's function by its unqualified ARN (the ASL's FunctionName), nothing else.
        sweeper.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function.function_arn])
        )
        acknowledge(
            sweeper.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions log delivery (logs:*LogDelivery, PutResourcePolicy, Describe*) and X-Ray tracing "
            "(xray:PutTraceSegments, GetSampling*) support no resource-level permissions.",
        )
        return sweeper

"""Periodic jobs from JOBS: sub-minute ones run by a sweeper (Express state machine started every minute),
minute ones by an EventBridge rule that invokes the function; one encrypted dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandboxcp.routes import JOBS, Job
from sandboxcp_infra.schedules import ASL_FILE, sweeper_substitutions
from tests.infra import helpers as h
from tests.infra.conftest import Synthesized

SUB_MINUTE = [job for job in JOBS if job.every_s is not None and job.every_s < 60]
MINUTELY = [job for job in JOBS if job.every_s is not None and job.every_s >= 60]


def _rule_targeting(synth: Synthesized, logical_id: str) -> dict[str, Any]:
    (rule,) = [
        r["Properties"]
        for r in h.of_type(synth, "AWS::Events::Rule").values()
        if any(logical_id in h.refs(t["Arn"]) for t in r["Properties"]["Targets"])
    ]
    return rule


def _definition(synth: Synthesized, state_machine: dict[str, Any]) -> dict[str, Any]:
    """The ASL the state machine runs (an S3 asset), with its DefinitionSubstitutions applied; CloudFormation
    values (the function ARN) are left as their JSON."""
    props = state_machine["Properties"]
    text = (synth.outdir / f"asset.{props['DefinitionS3Location']['Key']}").read_text()
    for name, value in props["DefinitionSubstitutions"].items():
        text = text.replace("${" + name + "}", value if isinstance(value, str) else f"<{name}>")
    definition: dict[str, Any] = json.loads(text)
    return definition


def test_the_route_table_has_both_kinds_of_periodic_jobs() -> None:
    assert "schedule_reap_executions" in {j.module for j in SUB_MINUTE}
    assert MINUTELY, "nothing exercises the plain EventBridge path"


@pytest.mark.parametrize("job", SUB_MINUTE, ids=lambda j: j.module)
def test_sub_minute_job_runs_in_a_sweeper_started_every_minute(synthesized: Synthesized, job: Job) -> None:
    assert job.every_s is not None
    sweeper = synthesized.stack.schedules.sweepers[job.module]
    sweeper_id = synthesized.logical_id(sweeper)
    state_machine = synthesized.resources[sweeper_id]
    props = state_machine["Properties"]
    assert props["StateMachineType"] == "EXPRESS"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False

    function_id = h.function_ids(synthesized)[job.module]
    assert props["DefinitionSubstitutions"] == {
        "JobFunctionArn": {"Fn::GetAtt": [function_id, "Arn"]},
        "EverySeconds": str(job.every_s),
        "Iterations": str(60 // job.every_s),
    }
    states = _definition(synthesized, state_machine)["States"]
    assert states["RunJob"]["Resource"] == "arn:aws:states:::lambda:invoke"
    assert states["RunJob"]["Parameters"]["FunctionName"] == "<JobFunctionArn>"
    assert states["Init"]["Parameters"]["every_s.$"] == f"States.StringToJson('{job.every_s}')"
    assert states["Init"]["Parameters"]["iterations.$"] == f"States.StringToJson('{60 // job.every_s}')"
    assert states["Wait"] == {"Type": "Wait", "SecondsPath": "$.every_s", "Next": "RunJob"}

    rule = _rule_targeting(synthesized, sweeper_id)
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": sweeper_id}
    assert h.refs(target["DeadLetterConfig"]["Arn"]) == {
        synthesized.logical_id(synthesized.stack.schedules.dead_letter_queue)
    }
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0

    # The sweeper may invoke its job's function and nothing else.
    role_id = props["RoleArn"]["Fn::GetAtt"][0]
    invokes = [
        s
        for p in h.of_type(synthesized, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in h.as_list(s["Action"])
    ]
    assert [s["Resource"] for s in invokes] == [{"Fn::GetAtt": [function_id, "Arn"]}]


@pytest.mark.parametrize("job", MINUTELY, ids=lambda j: j.module)
def test_minute_job_has_a_rule_invoking_its_function(synthesized: Synthesized, job: Job) -> None:
    assert job.every_s is not None
    function_id = h.function_ids(synthesized)[job.module]
    rule = _rule_targeting(synthesized, function_id)
    minutes = job.every_s // 60
    assert rule["ScheduleExpression"] == f"rate({minutes} minute{'s' if minutes > 1 else ''})"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert "DeadLetterConfig" in target
    assert job.module not in synthesized.stack.schedules.sweepers
    permissions = [
        p["Properties"]
        for p in h.of_type(synthesized, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com" and function_id in h.refs(p["Properties"])
    ]
    assert len(permissions) == 1


def test_only_periodic_jobs_are_scheduled(synthesized: Synthesized) -> None:
    periodic = {job.module for job in JOBS if job.every_s is not None}
    assert set(synthesized.stack.schedules.rules) == periodic
    assert len(h.of_type(synthesized, "AWS::Events::Rule")) == len(periodic)
    assert set(synthesized.stack.schedules.sweepers) == {job.module for job in SUB_MINUTE}


def test_dead_letter_queue_encrypted_and_tls_only(synthesized: Synthesized) -> None:
    queue_id = synthesized.logical_id(synthesized.stack.schedules.dead_letter_queue)
    assert synthesized.resources[queue_id]["Properties"]["SqsManagedSseEnabled"] is True
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in h.of_type(synthesized, "AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
    ]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy
    )
    senders = [s for s in policy if s["Effect"] == "Allow"]
    assert senders and all(s["Principal"] == {"Service": "events.amazonaws.com"} for s in senders)


@pytest.mark.parametrize("every_s", [5, 10, 15, 20, 30])
def test_sweeper_loop_fits_in_a_minute(every_s: int) -> None:
    """Walk the ASL's loop: `60 / every_s` invocations, a wait between two of them, and the run ends
    (sum of waits) before the next minute's run starts."""
    job = Job("some_job", every_s=every_s)
    text = ASL_FILE.read_text()
    for name, value in sweeper_substitutions(job, "arn:aws:lambda:us-east-1:123456789012:function:f").items():
        text = text.replace("${" + name + "}", value)
    definition = json.loads(text)
    states = definition["States"]
    iterations = json.loads(states["Init"]["Parameters"]["iterations.$"].split("'")[1])
    every = json.loads(states["Init"]["Parameters"]["every_s.$"].split("'")[1])
    assert states["Count"]["Parameters"]["iteration.$"] == "States.MathAdd($.iteration, 1)"
    (more,) = states["MoreThisMinute"]["Choices"]
    assert (more["Variable"], more["NumericLessThanPath"], more["Next"]) == (
        "$.iteration",
        "$.iterations",
        "Wait",
    )

    state, iteration, invocations, waited = definition["StartAt"], 0, 0, 0
    while state != "Done":
        if state == "RunJob":
            invocations += 1
        elif state == "Count":
            iteration += 1
        elif state == "Wait":
            waited += every
        state = (
            (more["Next"] if iteration < iterations else states[state]["Default"])
            if states[state]["Type"] == "Choice"
            else states[state]["Next"]
        )
    assert invocations == 60 // every_s
    assert waited == 60 - every_s < definition["TimeoutSeconds"]
    # Lambda's own failures are retried; a job's error is caught and the loop goes on.
    assert "Lambda.ServiceException" in states["RunJob"]["Retry"][0]["ErrorEquals"]
    assert states["RunJob"]["Catch"][0]["ErrorEquals"] == ["States.ALL"]
    assert states["RunJob"]["Catch"][0]["Next"] == "Count"


def test_sweeper_asl_passes_cfn_lint_state_machine_checks() -> None:
    """cfn-lint validates inline definitions (E3601); the deployed one is an S3 asset, so lint it inline."""
    from cfnlint.api import ManualArgs, lint

    text = ASL_FILE.read_text()
    job = Job("some_job", every_s=5)
    for name, value in sweeper_substitutions(job, "arn:aws:lambda:us-east-1:123456789012:function:f").items():
        text = text.replace("${" + name + "}", value)
    template = {
        "Resources": {
            "Sweeper": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/sweeper",
                    "StateMachineType": "EXPRESS",
                    "Definition": json.loads(text),
                },
            }
        }
    }
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


@pytest.mark.parametrize(
    ("every_s", "message"), [(7, "must divide 60"), (90, "whole minutes"), (0, "not a periodic job")]
)
def test_unschedulable_periods_fail(every_s: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sweeper_substitutions(Job("odd_job", every_s=every_s), "arn")

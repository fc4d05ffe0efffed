"""moto_sfn_cache: moto's Step Functions interpreter parses each JSONPath and each definition of a workflow
once per process, and executions still compute what they did (Parameters, ResultSelector-style reads,
ResultPath merges), also when they run at the same time from one shared program."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from moto import mock_aws

from sandboxcp.local import moto_sfn_cache

DEFINITION = {
    "StartAt": "Pick",
    "States": {
        "Pick": {
            "Type": "Pass",
            "Parameters": {"id.$": "$.session_id", "first.$": "$.items[0]", "name.$": "$$.Execution.Name"},
            "ResultPath": "$.picked",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def _run(sfn: Any, arn: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            assert described["status"] == "SUCCEEDED", described
            return dict(json.loads(described["output"]))
        time.sleep(0.02)
    raise AssertionError("the execution did not finish")


def test_each_path_is_parsed_once_and_still_selects_the_same_values() -> None:
    moto_sfn_cache.install()
    moto_sfn_cache.install()  # idempotent
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="m", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::123456789012:role/r"
        )["stateMachineArn"]
        first = _run(sfn, arn, "one", {"session_id": "s1", "items": [7, 8]})
        picked = {"id": "s1", "first": 7, "name": "one"}
        assert first == {"session_id": "s1", "items": [7, 8], "picked": picked}
        parsed = moto_sfn_cache.parses()
        assert parsed["ext"] > 0 and parsed["base"] > 0, parsed  # moto parses through the cached functions
        second = _run(sfn, arn, "two", {"session_id": "s2", "items": [9]})
        assert second["picked"] == {"id": "s2", "first": 9, "name": "two"}
        assert moto_sfn_cache.parses() == parsed  # the second execution built no parser


def test_executions_started_together_share_one_parsed_definition() -> None:
    moto_sfn_cache.install()
    definition = json.dumps({**DEFINITION, "Comment": f"shared-{time.monotonic_ns()}"})  # a new definition
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="shared", definition=definition, roleArn="arn:aws:iam::123456789012:role/r"
        )["stateMachineArn"]
        before = moto_sfn_cache.parses()["definition"]
        with ThreadPoolExecutor(max_workers=6) as pool:
            outputs = list(
                pool.map(lambda i: _run(sfn, arn, f"run{i}", {"session_id": f"s{i}", "items": [i]}), range(6))
            )
        assert [o["picked"] for o in outputs] == [
            {"id": f"s{i}", "first": i, "name": f"run{i}"} for i in range(6)
        ]
        assert moto_sfn_cache.parses()["definition"] == before + 1


def test_a_shared_program_has_every_heap_key_drawn_before_any_execution_uses_it() -> None:
    """Retry counters live in each execution's heap under their component's lazily drawn key; drawn in
    two executions at once, they could differ. The cache draws them all when it parses."""
    moto_sfn_cache.install()
    with_retry = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f",
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}],
                "End": True,
            }
        },
    }
    program, _ = moto_sfn_cache._installed["definition"].parse(json.dumps(with_retry))
    components = list(moto_sfn_cache.components(program))
    retry_parts = [c for c in components if type(c).__name__ in ("MaxAttemptsDecl", "BackoffRateDecl")]
    assert retry_parts, "the walk must reach the retrier's components"
    assert all(c.__dict__.get("_EvalComponent__heap_key") for c in components)


def test_lambda_tasks_share_one_client_per_region() -> None:
    moto_sfn_cache.install()
    import moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils as lambda_eval

    with mock_aws():
        first = lambda_eval.boto_client_for(region="us-east-1", service="lambda", state_credentials=object())
        again = lambda_eval.boto_client_for(region="us-east-1", service="lambda", state_credentials=None)
        other = lambda_eval.boto_client_for(region="eu-west-1", service="lambda", state_credentials=None)
    assert first is again
    assert other is not first and other.meta.region_name == "eu-west-1"

"""moto_jsonpath: moto's Step Functions interpreter parses each JSONPath of a workflow once per process,
and the paths still select what they did (Parameters, ResultSelector-style reads, ResultPath merges)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from moto import mock_aws

from sandboxcp.local import moto_jsonpath

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
    moto_jsonpath.install()
    moto_jsonpath.install()  # idempotent
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="m", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::123456789012:role/r"
        )["stateMachineArn"]
        first = _run(sfn, arn, "one", {"session_id": "s1", "items": [7, 8]})
        picked = {"id": "s1", "first": 7, "name": "one"}
        assert first == {"session_id": "s1", "items": [7, 8], "picked": picked}
        parsed = moto_jsonpath.parses()
        assert parsed["ext"] > 0 and parsed["base"] > 0, parsed  # moto parses through the cached functions
        second = _run(sfn, arn, "two", {"session_id": "s2", "items": [9]})
        assert second["picked"] == {"id": "s2", "first": 9, "name": "two"}
        assert moto_jsonpath.parses() == parsed  # the second execution built no parser

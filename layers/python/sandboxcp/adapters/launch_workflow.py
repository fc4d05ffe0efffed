"""The launch state machine on AWS Step Functions (moto's interpreter in local mode)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import boto3


class StepFunctionsLaunchWorkflow:
    def __init__(self, state_machine_arn: str, client: Any = None) -> None:
        self._arn = state_machine_arn
        self._injected = client

    @cached_property
    def _sfn(self) -> Any:
        return self._injected or boto3.client("stepfunctions")

    def start(self, session_id: str) -> None:
        # The execution name is the session id: Step Functions refuses a second launch of one session.
        self._sfn.start_execution(
            stateMachineArn=self._arn, name=session_id, input=json.dumps({"session_id": session_id})
        )

    def notify_ready(self, task_token: str, output: Mapping[str, Any]) -> None:
        self._sfn.send_task_success(taskToken=task_token, output=json.dumps(dict(output)))

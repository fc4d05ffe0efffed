"""Executions table; outcomes too large for an item live in the result store (S3)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pynamodb.exceptions import UpdateError

from sandboxcp.adapters.dynamo.common import (
    condition_failed,
    from_record,
    get_item,
    page_slice,
    record_fields,
    update_actions,
)
from sandboxcp.adapters.tables import ExecutionRecord
from sandboxcp.domain.errors import StateConflict
from sandboxcp.domain.models import OUTCOME_TO_STATUS, Execution, ExecutionOutcome
from sandboxcp.domain.ports import Page, ResultStore
from sandboxcp.domain.states import TERMINAL_EXECUTION_STATUSES, ExecutionStatus, execution_sources

INFLIGHT = "1"
# DynamoDB items hold at most 400 KB; an outcome (up to 1 MB of stdout and of stderr) above this goes to S3.
# Measured as stored (JSON with non-ASCII escaped), next to at most 100 KiB of code and 192 KiB of event.
INLINE_OUTCOME_LIMIT = 64 * 1024
# Every Execution field but the outcome is an ExecutionRecord attribute of the same name; the outcome is
# `outcome` (inline) or `outcome_key` (S3).
EXECUTION_FIELDS = record_fields(Execution, exclude=frozenset({"outcome"}))


class DynamoExecutionRepository:
    def __init__(self, results: ResultStore) -> None:
        self._results = results

    def _to_domain(self, r: ExecutionRecord, *, with_outcome: bool = True) -> Execution:
        outcome = None
        if with_outcome and r.outcome:
            outcome = ExecutionOutcome.model_validate(r.outcome)
        elif with_outcome and r.outcome_key:
            outcome = ExecutionOutcome.model_validate_json(self._results.get(r.outcome_key))
        return from_record(Execution, r, EXECUTION_FIELDS, outcome=outcome)

    def create(self, execution: Execution) -> None:
        data = execution.model_dump(exclude={"status", "outcome", "last_heartbeat_at"})
        record = ExecutionRecord(
            **data,
            status=execution.status.value,
            session_status=f"{execution.session_id}#{execution.status.value}",
            inflight=INFLIGHT,
            # Until the executor's first heartbeat, the crash clock starts at submission.
            last_heartbeat_at=execution.last_heartbeat_at or execution.created_at,
        )
        record.save(condition=ExecutionRecord.execution_id.does_not_exist())

    def get(self, execution_id: str, *, with_outcome: bool = True) -> Execution | None:
        r = get_item(ExecutionRecord, execution_id)
        return self._to_domain(r, with_outcome=with_outcome) if r else None

    def list_inflight(self) -> list[Execution]:
        """Pending and running executions, oldest heartbeat first (a Query on the sparse index)."""
        return [
            self._to_domain(r, with_outcome=False) for r in ExecutionRecord.inflight_index.query(INFLIGHT)
        ]

    def count_inflight_for_session(self, session_id: str) -> int:
        return sum(
            ExecutionRecord.by_session_status.count(f"{session_id}#{status.value}")
            for status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
        )

    def list_for_session(
        self, session_id: str, *, status: ExecutionStatus | None, limit: int, offset: int
    ) -> Page[Execution]:
        index: Any
        if status is not None:
            index, key = ExecutionRecord.by_session_status, f"{session_id}#{status.value}"
        else:
            index, key = ExecutionRecord.by_session, session_id
        total = index.count(key)
        rows = index.query(key, scan_index_forward=False)
        items = [self._to_domain(r, with_outcome=False) for r in page_slice(rows, limit, offset)]
        return Page(items=items, total=total)

    def transition(
        self,
        execution_id: str,
        target: ExecutionStatus,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
    ) -> Execution:
        current = get_item(ExecutionRecord, execution_id)
        if current is None:
            raise StateConflict(f"Execution '{execution_id}' does not exist")
        changes = {
            "status": target.value,
            "session_status": f"{current.session_id}#{target.value}",
            "inflight": None if target in TERMINAL_EXECUTION_STATUSES else INFLIGHT,
            **(fields or {}),
        }
        try:
            current.update(
                actions=update_actions(ExecutionRecord, changes),
                condition=ExecutionRecord.status.is_in(*[s.value for s in execution_sources(target)]),
            )
        except UpdateError as err:
            if condition_failed(err):
                raise StateConflict(
                    f"Execution '{execution_id}' is already '{current.status}'; cannot move to '{target}'"
                ) from err
            raise
        return self._to_domain(current, with_outcome=False)

    def record_outcome(self, execution_id: str, outcome: ExecutionOutcome, *, now: datetime) -> Execution:
        inline = outcome.model_dump(mode="json")
        fields: dict[str, Any] = {"completed_at": now}
        if len(json.dumps(inline)) <= INLINE_OUTCOME_LIMIT:  # as the JSONAttribute stores it (ASCII)
            fields["outcome"] = inline
        else:
            # Written before the conditional update: a losing writer leaves an unreferenced object at
            # worst (its key is per attempt), never a half-stored result.
            key = f"results/{execution_id}/{uuid.uuid4().hex}.json"
            self._results.put(key, outcome.model_dump_json().encode())
            fields["outcome_key"] = key
        stored = self.transition(execution_id, OUTCOME_TO_STATUS[outcome.status], now=now, fields=fields)
        return stored.model_copy(update={"outcome": outcome})

    def heartbeat(self, execution_id: str, now: datetime) -> None:
        try:
            ExecutionRecord(execution_id=execution_id).update(
                actions=[ExecutionRecord.last_heartbeat_at.set(now)],
                condition=ExecutionRecord.status.is_in(
                    ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value
                ),
            )
        except UpdateError as err:
            if condition_failed(err):
                raise StateConflict(f"Execution '{execution_id}' is not running") from err
            raise

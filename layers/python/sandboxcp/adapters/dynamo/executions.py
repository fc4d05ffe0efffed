"""Executions table; outcomes too large for an item live in the result store (S3)."""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition

from sandboxcp.adapters.dynamo.common import (
    condition_failed,
    from_record,
    get_item,
    query_page,
    record_fields,
    update_actions,
)
from sandboxcp.adapters.dynamo.tenants import Check, DynamoTenantQuotas, Share, Update, failed_at
from sandboxcp.adapters.tables import ContextRecord, ExecutionRecord, SessionRecord
from sandboxcp.domain.errors import (
    ContextUnavailable,
    ExecutionNotFound,
    Forbidden,
    InvalidParameter,
    SessionChanged,
    StateConflict,
    TooManyRequests,
)
from sandboxcp.domain.models import OUTCOME_TO_STATUS, Execution, ExecutionOutcome, Session
from sandboxcp.domain.ports import Page, ResultStore
from sandboxcp.domain.states import (
    TERMINAL_EXECUTION_STATUSES,
    ExecutionStatus,
    SessionStatus,
    execution_sources,
)
from sandboxcp.domain.workspace import Artifact

INFLIGHT = "1"
WRITTEN_MEMORY = 64  # execute-syncs in flight in this process whose end may skip the read
# DynamoDB items hold at most 400 KB; an outcome (up to 1 MB of stdout and of stderr) above this goes to S3.
# Measured as stored (JSON with non-ASCII escaped), next to at most 100 KiB of code and 192 KiB of event.
INLINE_OUTCOME_LIMIT = 64 * 1024
# Every Execution field but the outcome is an ExecutionRecord attribute of the same name; the outcome is
# `outcome` (inline) or `outcome_key` (S3).
EXECUTION_FIELDS = record_fields(Execution, exclude=frozenset({"outcome"}))


class DynamoExecutionRepository:
    def __init__(
        self,
        results: ResultStore,
        quotas: DynamoTenantQuotas | None = None,
        *,
        retention: timedelta = timedelta(days=30),
    ) -> None:
        self._results = results
        # quotas: an execution takes its tenant's in-flight share in its create's transaction and gives it
        # back in the one that ends it. retention: a finished execution's item expires (TTL) after it.
        self._quotas = quotas
        self._retention = retention
        # Executions this process created, as it wrote them: ending one of them skips the read, its write
        # then conditioned on the item being still as written (else it is read after all).
        self._written: OrderedDict[str, ExecutionRecord] = OrderedDict()

    def _to_domain(self, r: ExecutionRecord, *, with_outcome: bool = True) -> Execution:
        outcome = None
        if with_outcome and r.outcome:
            outcome = ExecutionOutcome.model_validate(r.outcome)
        elif with_outcome and r.outcome_key:
            outcome = ExecutionOutcome.model_validate_json(self._results.get(r.outcome_key))
        if outcome is not None and r.artifacts:
            # Artifacts reported on their own (FR-050): a reported path replaces the result's entry.
            merged = {a.path: a for a in outcome.artifacts}
            merged.update((a["path"], Artifact.model_validate(a)) for a in r.artifacts)
            outcome = outcome.model_copy(update={"artifacts": list(merged.values())})
        return from_record(Execution, r, EXECUTION_FIELDS, outcome=outcome)

    def add_artifacts(
        self, execution_id: str, artifacts: list[Artifact], *, max_count: int
    ) -> list[Artifact]:
        for _ in range(5):
            current = get_item(ExecutionRecord, execution_id)
            if current is None:
                raise ExecutionNotFound(f"Execution '{execution_id}' does not exist")
            merged = {a["path"]: a for a in (current.artifacts or [])}
            merged.update((a.path, a.model_dump(mode="json")) for a in artifacts)
            if len(merged) > max_count:
                raise InvalidParameter(
                    f"An execution keeps at most {max_count} reported artifacts ({len(merged)} with these)"
                )
            # Optimistic: written only over the list read, so two concurrent reports both land.
            unchanged = (
                ExecutionRecord.artifacts.does_not_exist()
                if current.artifacts is None
                else ExecutionRecord.artifacts == current.artifacts
            )
            try:
                current.update(
                    actions=[ExecutionRecord.artifacts.set(list(merged.values()))], condition=unchanged
                )
            except UpdateError as err:
                if condition_failed(err):
                    continue
                raise
            return [Artifact.model_validate(a) for a in merged.values()]
        raise StateConflict(f"Artifacts of execution '{execution_id}' changed concurrently; retry")

    def create(
        self,
        execution: Execution,
        *,
        enforce_quota: bool = False,
        session_limit: int | None = None,
        remember: bool = False,
        session_as_read: Session | None = None,
    ) -> None:
        """Store a new execution. With `session_limit`, the same transaction also takes one of its running
        session's in-flight slots (TooManyRequests when all are taken; StateConflict when the session is
        no longer running) and marks the session active: a submit is one write, no Query. With
        `session_as_read`, only while the session has what the submit sends the run with (SessionChanged)."""
        data = execution.model_dump(exclude={"status", "outcome", "last_heartbeat_at"})
        record = ExecutionRecord(
            **data,
            status=execution.status.value,
            session_status=f"{execution.session_id}#{execution.status.value}",
            inflight=INFLIGHT,
            # Until the executor's first heartbeat, the crash clock starts at submission.
            last_heartbeat_at=execution.last_heartbeat_at or execution.created_at,
        )
        condition = ExecutionRecord.execution_id.does_not_exist()
        checks: list[Check] = []
        if execution.context_id is not None:  # a cell: its context is live, of this session, in its language
            C = ContextRecord
            in_context = (
                (C.live_session == execution.session_id)
                & (C.tenant_id == execution.tenant_id)
                & (C.language == execution.language)
            )
            checks.append((C, execution.context_id, in_context))
        if self._quotas is None:
            if checks:
                context = get_item(ContextRecord, execution.context_id or "")
                if context is None or not (
                    context.live_session == execution.session_id
                    and context.tenant_id == execution.tenant_id
                    and context.language == execution.language
                ):
                    raise ContextUnavailable(f"Context '{execution.context_id}' is not available")
            record.save(condition=condition)
            return
        record.quota_counted = True
        share = Share.execution(execution.tenant_id)
        also: list[Update] = []
        if session_limit is not None:
            record.session_slot = True
            S = SessionRecord
            slot = S.executions_inflight.does_not_exist() | (S.executions_inflight < session_limit)
            condition_on_session = (S.status == SessionStatus.RUNNING.value) & slot
            if session_as_read is not None:
                condition_on_session &= _as_read(session_as_read)
            also.append(
                (
                    S(session_id=execution.session_id),
                    [S.executions_inflight.add(1), S.last_activity_at.set(execution.created_at)],
                    condition_on_session,
                )
            )
        try:
            self._quotas.save_with_share(
                record, condition, share, enforce=enforce_quota, also=also, checks=checks
            )
            if remember:  # kept only for a run that ends here: a record holds up to 1 MiB of code
                self._remember(record)
        except TransactWriteError as err:
            if checks and failed_at(err, 0):  # (checks go first in a transaction)
                raise ContextUnavailable(f"Context '{execution.context_id}' is not available") from err
            if not also or not failed_at(err, 2 + len(checks)):
                raise
            session = get_item(SessionRecord, execution.session_id)
            if session is None or session.status != SessionStatus.RUNNING.value:
                raise StateConflict(
                    f"Session '{execution.session_id}' is no longer running",
                    solution="Create a new session",
                ) from err
            slots_left = session_limit is not None and int(session.executions_inflight or 0) < session_limit
            if session_as_read is not None and slots_left:
                raise SessionChanged(f"Session '{execution.session_id}' changed meanwhile") from err
            raise TooManyRequests(
                f"Session '{execution.session_id}' already has {session_limit} executions pending or "
                f"running (limit {session_limit})",
                solution="Wait for some to finish, or spread the work over more sessions",
            ) from err

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
        self,
        session_id: str,
        *,
        status: ExecutionStatus | None,
        limit: int,
        offset: int,
        start_key: dict[str, Any] | None = None,
        with_total: bool = True,
    ) -> Page[Execution]:
        index: Any
        if status is not None:
            index, hash_attr = ExecutionRecord.by_session_status, "session_status"
            key = f"{session_id}#{status.value}"
        else:
            index, key, hash_attr = ExecutionRecord.by_session, session_id, "session_id"
        rows, total, next_key = query_page(
            index,
            key,
            key_attrs=tuple(dict.fromkeys(("execution_id", hash_attr, "created_at"))),
            hash_attr=hash_attr,
            limit=limit,
            offset=offset,
            start_key=start_key,
            with_total=with_total,
        )
        items = [self._to_domain(r, with_outcome=False) for r in rows]
        return Page(items=items, total=total, next_key=next_key)

    def transition(
        self,
        execution_id: str,
        target: ExecutionStatus,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
        owner_session: str | None = None,
    ) -> Execution:
        written = self._written.pop(execution_id, None)
        if written is not None and written.quota_counted and target in TERMINAL_EXECUTION_STATUSES:
            _check_owner(written, owner_session)
            # Still as this process wrote it: same status, its quota share and session slot still held.
            still = (ExecutionRecord.status == written.status) & ExecutionRecord.quota_counted.exists()
            if written.session_slot:
                still &= ExecutionRecord.session_slot.exists()
            try:
                return self._change(written, target, now=now, fields=fields, unchanged=still)
            except StateConflict:
                pass  # changed meanwhile (a heartbeat's "running", a retry): read it
        current = get_item(ExecutionRecord, execution_id)
        if current is None:
            raise StateConflict(f"Execution '{execution_id}' does not exist")
        _check_owner(current, owner_session)
        return self._change(current, target, now=now, fields=fields)

    def _remember(self, record: ExecutionRecord) -> None:
        self._written[record.execution_id] = record
        while len(self._written) > WRITTEN_MEMORY:
            self._written.popitem(last=False)

    def _change(
        self,
        current: ExecutionRecord,
        target: ExecutionStatus,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None,
        unchanged: Condition | None = None,
    ) -> Execution:
        """Move `current` to `target` if its status allows it (and `unchanged` holds)."""
        execution_id = current.execution_id
        changes = {
            "status": target.value,
            "session_status": f"{current.session_id}#{target.value}",
            "inflight": None if target in TERMINAL_EXECUTION_STATUSES else INFLIGHT,
            **(fields or {}),
        }
        if target in TERMINAL_EXECUTION_STATUSES:
            changes["expires_at"] = int((now + self._retention).timestamp())  # DynamoDB TTL
        condition = ExecutionRecord.status.is_in(*[s.value for s in execution_sources(target)])
        if unchanged is not None:
            condition &= unchanged
        conflict = StateConflict(
            f"Execution '{execution_id}' is already '{current.status}'; cannot move to '{target}'"
        )
        if current.quota_counted and target in TERMINAL_EXECUTION_STATUSES:
            # Ending: the in-flight share goes back in the same transaction, so exactly once.
            changes["quota_counted"] = None
            actions = update_actions(ExecutionRecord, changes)
            share = Share.execution(current.tenant_id)
            also: list[Update] = []
            if current.session_slot:
                # Its session's in-flight slot goes back in the same transaction, and the session was
                # active now (its idle clock starts again: no separate touch).
                changes["session_slot"] = None
                actions = update_actions(ExecutionRecord, changes)
                S = SessionRecord
                session_actions = [S.executions_inflight.add(-1), S.last_activity_at.set(now)]
                also.append((S(session_id=current.session_id), session_actions, S.session_id.exists()))
            if not DynamoTenantQuotas.update_giving_back(current, actions, condition, share, also=also):
                raise conflict
            for name, value in changes.items():
                setattr(current, name, value)
            return self._to_domain(current, with_outcome=False)
        try:
            current.update(actions=update_actions(ExecutionRecord, changes), condition=condition)
        except UpdateError as err:
            if condition_failed(err):
                raise conflict from err
            raise
        return self._to_domain(current, with_outcome=False)

    def record_outcome(
        self, execution_id: str, outcome: ExecutionOutcome, *, now: datetime, owner_session: str | None = None
    ) -> Execution:
        inline = outcome.model_dump(mode="json")
        fields: dict[str, Any] = {"completed_at": now}
        if outcome.started_at is not None:
            fields["started_at"] = outcome.started_at
        if len(json.dumps(inline)) <= INLINE_OUTCOME_LIMIT:  # as the JSONAttribute stores it (ASCII)
            fields["outcome"] = inline
        else:
            # Written before the conditional update: a losing writer leaves an unreferenced object at
            # worst (its key is per attempt), never a half-stored result.
            if owner_session is not None:  # nothing is written for another session's execution
                owned = get_item(ExecutionRecord, execution_id)
                if owned is None:
                    raise StateConflict(f"Execution '{execution_id}' does not exist")
                _check_owner(owned, owner_session)
            key = f"results/{execution_id}/{uuid.uuid4().hex}.json"
            self._results.put(key, outcome.model_dump_json().encode())
            fields["outcome_key"] = key
        target = OUTCOME_TO_STATUS[outcome.status]
        stored = self.transition(execution_id, target, now=now, fields=fields, owner_session=owner_session)
        return stored.model_copy(update={"outcome": outcome})

    def claim_retry(self, execution_id: str, retry_after: datetime, now: datetime) -> bool:
        try:
            ExecutionRecord(execution_id=execution_id).update(
                actions=[ExecutionRecord.retry_after.remove(), ExecutionRecord.last_heartbeat_at.set(now)],
                condition=(ExecutionRecord.retry_after == retry_after)
                & (ExecutionRecord.status == ExecutionStatus.PENDING.value),
            )
        except UpdateError as err:
            if condition_failed(err):
                return False
            raise
        return True

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


def _check_owner(record: ExecutionRecord, owner_session: str | None) -> None:
    if owner_session is not None and record.session_id != owner_session:
        raise Forbidden(f"This callback token is not valid for execution '{record.execution_id}'")


def _as_read(session: Session) -> Condition:
    """The session item still holds what the submit read and sends the run with: its executor's address
    and key, and the workspace revision (with whether a presigned upload may still land)."""
    S = SessionRecord

    def same(attribute: Any, value: Any) -> Condition:
        return attribute.does_not_exist() if value is None else attribute == value

    condition = same(S.executor_url, session.executor_url) & same(
        S.callback_token_hash, session.callback_token_hash
    )
    rev = S.workspace_rev == session.workspace_rev
    condition &= (rev | S.workspace_rev.does_not_exist()) if session.workspace_rev == 0 else rev
    return condition & same(S.workspace_open_until, session.workspace_open_until)

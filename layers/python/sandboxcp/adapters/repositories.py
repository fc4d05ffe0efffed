"""DynamoDB repositories (pynamodb). Every status change is a conditional update whose condition is the
domain state machine's set of allowed source statuses, so two racing writers never both win."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.models import Model

from sandboxcp.adapters.tables import ApiKeyRecord, ExecutionRecord, SessionRecord, TemplateRecord
from sandboxcp.domain.errors import StateConflict
from sandboxcp.domain.models import OUTCOME_TO_STATUS, ApiKey, Execution, ExecutionOutcome, Session, Template
from sandboxcp.domain.ports import Page, ResultStore
from sandboxcp.domain.states import (
    ACTIVE_SESSION_STATUSES,
    TERMINAL_EXECUTION_STATUSES,
    ExecutionStatus,
    SessionStatus,
    execution_sources,
    session_sources,
)

_CONDITION_FAILED = "ConditionalCheckFailedException"
M = TypeVar("M", bound=Model)


def _condition_failed(err: Exception) -> bool:
    return getattr(err, "cause_response_code", None) == _CONDITION_FAILED


def _get(model: type[M], key: str) -> M | None:
    try:
        return model.get(key, consistent_read=True)
    except DoesNotExist:
        return None


def _actions(model: type[Model], fields: Mapping[str, Any]) -> list[Any]:
    """pynamodb update actions: set each field, or remove it when the value is None."""
    acts = []
    for name, value in fields.items():
        attr = getattr(model, name)
        acts.append(attr.remove() if value is None else attr.set(value))
    return acts


def _page_slice(results: Iterable[M], limit: int, offset: int) -> list[M]:
    out: list[M] = []
    for i, item in enumerate(results):
        if i >= offset + limit:
            break
        if i >= offset:
            out.append(item)
    return out


class DynamoSessionRepository:
    @staticmethod
    def _to_domain(r: SessionRecord) -> Session:
        return Session(
            session_id=r.session_id,
            tenant_id=r.tenant_id,
            template_id=r.template_id,
            status=SessionStatus(r.status),
            runtime_type=r.runtime_type,
            runtime_node=r.runtime_node,
            container_id=r.container_id,
            executor_url=r.executor_url,
            workspace_path=r.workspace_path,
            resources=r.resources,
            env_vars=r.env_vars or {},
            timeout=int(r.timeout),
            callback_token_hash=r.callback_token_hash,
            task_token=r.task_token,
            error_message=r.error_message,
            created_at=r.created_at,
            updated_at=r.updated_at,
            started_at=r.started_at,
            terminated_at=r.terminated_at,
            last_activity_at=r.last_activity_at,
        )

    @staticmethod
    def _status_fields(tenant_id: str, status: SessionStatus) -> dict[str, Any]:
        return {
            "status": status.value,
            "tenant_status": f"{tenant_id}#{status.value}",
            "active_status": status.value if status in ACTIVE_SESSION_STATUSES else None,
        }

    def create(self, session: Session) -> None:
        data = session.model_dump(exclude={"status", "resources"})
        record = SessionRecord(
            **data,
            resources=session.resources.model_dump(),
            **{
                k: v
                for k, v in self._status_fields(session.tenant_id, session.status).items()
                if v is not None
            },
        )
        record.save(condition=SessionRecord.session_id.does_not_exist())

    def get(self, session_id: str) -> Session | None:
        r = _get(SessionRecord, session_id)
        return self._to_domain(r) if r else None

    def list_for_tenant(
        self,
        tenant_id: str,
        *,
        status: SessionStatus | None,
        template_id: str | None,
        limit: int,
        offset: int,
    ) -> Page[Session]:
        index: Any
        if status is not None:
            index, key = SessionRecord.by_tenant_status, f"{tenant_id}#{status.value}"
        else:
            index, key = SessionRecord.by_tenant, tenant_id
        flt = SessionRecord.template_id == template_id if template_id else None
        total = index.count(key, filter_condition=flt)
        rows = index.query(key, filter_condition=flt, scan_index_forward=False)
        return Page(items=[self._to_domain(r) for r in _page_slice(rows, limit, offset)], total=total)

    def list_active(self) -> list[Session]:
        """Creating and running sessions (a Query per status on the sparse `active` index)."""
        return [
            self._to_domain(r)
            for status in sorted(ACTIVE_SESSION_STATUSES)
            for r in SessionRecord.active.query(status.value)
        ]

    def transition(
        self,
        session_id: str,
        target: SessionStatus,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
        only_from: Iterable[SessionStatus] | None = None,
    ) -> Session:
        current = _get(SessionRecord, session_id)
        if current is None:
            raise StateConflict(f"Session '{session_id}' does not exist")
        sources = session_sources(target)
        if only_from is not None:
            sources = sources & frozenset(only_from)
        changes = {**self._status_fields(current.tenant_id, target), "updated_at": now, **(fields or {})}
        try:
            current.update(
                actions=_actions(SessionRecord, changes),
                condition=SessionRecord.status.is_in(*[s.value for s in sources]),
            )
        except UpdateError as err:
            if _condition_failed(err):
                raise StateConflict(
                    f"Session '{session_id}' cannot move to '{target}' from '{current.status}'"
                ) from err
            raise
        return self._to_domain(current)

    def update_fields(
        self, session_id: str, fields: Mapping[str, Any], *, only_if: Iterable[SessionStatus]
    ) -> None:
        record = SessionRecord(session_id=session_id)
        try:
            record.update(
                actions=_actions(SessionRecord, fields),
                condition=SessionRecord.session_id.exists()
                & SessionRecord.status.is_in(*[s.value for s in only_if]),
            )
        except UpdateError as err:
            if _condition_failed(err):
                raise StateConflict(f"Session '{session_id}' is no longer in {sorted(only_if)}") from err
            raise

    def touch(self, session_id: str, now: datetime) -> None:
        try:
            SessionRecord(session_id=session_id).update(
                actions=[SessionRecord.last_activity_at.set(now)],
                condition=SessionRecord.status == SessionStatus.RUNNING.value,
            )
        except UpdateError as err:
            if not _condition_failed(err):
                raise


INFLIGHT = "1"
# DynamoDB items hold at most 400 KB; an outcome (up to 1 MB of stdout and of stderr) above this goes to S3.
INLINE_OUTCOME_LIMIT = 64 * 1024


class DynamoExecutionRepository:
    def __init__(self, results: ResultStore) -> None:
        self._results = results

    def _to_domain(self, r: ExecutionRecord, *, with_outcome: bool = True) -> Execution:
        outcome = None
        if with_outcome and r.outcome:
            outcome = ExecutionOutcome.model_validate(r.outcome)
        elif with_outcome and r.outcome_key:
            outcome = ExecutionOutcome.model_validate_json(self._results.get(r.outcome_key))
        return Execution(
            execution_id=r.execution_id,
            session_id=r.session_id,
            tenant_id=r.tenant_id,
            status=ExecutionStatus(r.status),
            code=r.code,
            language=r.language,  # type: ignore[arg-type]
            timeout=int(r.timeout),
            event=r.event or {},
            outcome=outcome,
            error_message=r.error_message,
            retry_count=int(r.retry_count or 0),
            parent_execution_id=r.parent_execution_id,
            created_at=r.created_at,
            started_at=r.started_at,
            completed_at=r.completed_at,
            last_heartbeat_at=r.last_heartbeat_at,
        )

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
        r = _get(ExecutionRecord, execution_id)
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
        items = [self._to_domain(r, with_outcome=False) for r in _page_slice(rows, limit, offset)]
        return Page(items=items, total=total)

    def transition(
        self,
        execution_id: str,
        target: ExecutionStatus,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
    ) -> Execution:
        current = _get(ExecutionRecord, execution_id)
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
                actions=_actions(ExecutionRecord, changes),
                condition=ExecutionRecord.status.is_in(*[s.value for s in execution_sources(target)]),
            )
        except UpdateError as err:
            if _condition_failed(err):
                raise StateConflict(
                    f"Execution '{execution_id}' is already '{current.status}'; cannot move to '{target}'"
                ) from err
            raise
        return self._to_domain(current, with_outcome=False)

    def record_outcome(self, execution_id: str, outcome: ExecutionOutcome, *, now: datetime) -> Execution:
        body = outcome.model_dump_json()
        fields: dict[str, Any] = {"completed_at": now}
        if len(body) <= INLINE_OUTCOME_LIMIT:
            fields["outcome"] = outcome.model_dump(mode="json")
        else:
            # Written before the conditional update: a losing writer leaves an unreferenced object at
            # worst (its key is per attempt), never a half-stored result.
            key = f"results/{execution_id}/{uuid.uuid4().hex}.json"
            self._results.put(key, body.encode())
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
            if _condition_failed(err):
                raise StateConflict(f"Execution '{execution_id}' is not running") from err
            raise


class DynamoTemplateRepository:
    def get(self, template_id: str) -> Template | None:
        r = _get(TemplateRecord, template_id)
        return Template.model_validate(r.body) if r else None

    def list(self, *, limit: int, offset: int) -> Page[Template]:
        total = TemplateRecord.all_templates.count("template")
        rows = TemplateRecord.all_templates.query("template")
        return Page(
            items=[Template.model_validate(r.body) for r in _page_slice(rows, limit, offset)], total=total
        )

    def put_if_absent(self, template: Template) -> bool:
        try:
            TemplateRecord(
                template_id=template.id, body=template.model_dump(mode="json"), deprecated=template.deprecated
            ).save(condition=TemplateRecord.template_id.does_not_exist())
        except PutError as err:
            if _condition_failed(err):
                return False
            raise
        return True


class DynamoApiKeyRepository:
    def get(self, key_hash: str) -> ApiKey | None:
        r = _get(ApiKeyRecord, key_hash)
        if r is None:
            return None
        return ApiKey(
            key_hash=r.key_hash, tenant_id=r.tenant_id, is_admin=bool(r.is_admin), created_at=r.created_at
        )

    def put(self, key: ApiKey) -> None:
        ApiKeyRecord(**key.model_dump()).save(condition=ApiKeyRecord.key_hash.does_not_exist())

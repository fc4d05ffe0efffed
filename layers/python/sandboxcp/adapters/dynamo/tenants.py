"""Tenants table: per-tenant quotas as counters with conditional writes (sandboxcp.domain.quotas).

One small item per tenant holds its limits (`max_*`) and what it may still use (`free_*` = limit - usage).
- A session or execution takes its share in the same TransactWriteItems as its own create, conditioned on
  `free_* >= share`: two racing creates never both take the last slot, and no extra call is made.
- It gives the share back in the same transaction as its conditional move out of the live states
  (`quota_counted` on its record says it holds one), so the share returns exactly once.
- Limits start as the deployment's defaults, written on first use (`max_*` absent -> set it and add it to
  `free_*`, which also absorbs shares taken before); an admin's change adds the difference to `free_*`.
- Requests per second: a fixed one-second window on the same item (`rps_window`, `rps_free`), whose
  tokens each process takes in blocks (request_tokens.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from sandboxcp.adapters.dynamo.common import CONDITION_FAILED, get_item, update_if
from sandboxcp.adapters.dynamo.request_tokens import RequestTokens
from sandboxcp.adapters.tables import TenantRecord
from sandboxcp.domain.errors import StateConflict
from sandboxcp.domain.quotas import (
    QuotaExceeded,
    QuotaLimits,
    QuotaUsage,
    TenantQuota,
)

T = TenantRecord
# (limit attribute, free attribute, stored value of a QuotaLimits) per counted quota.
_COUNTED: dict[str, tuple[Any, Any, Callable[[QuotaLimits], int]]] = {
    "sessions": (T.max_sessions, T.free_sessions, lambda q: q.max_sessions),
    "inflight_executions": (T.max_inflight, T.free_inflight, lambda q: q.max_inflight_executions),
    "cpu": (T.max_cpu_m, T.free_cpu_m, lambda q: q.max_cpu_millis),
    "memory": (T.max_memory_mb, T.free_memory_mb, lambda q: q.max_memory_mb),
}
_TXN_CONDITION_FAILED = CONDITION_FAILED.removesuffix("Exception")  # a cancellation reason's code
# Takes of a share whose condition failed while a fresh read shows it fits (the item changed in between).
_SHARE_ATTEMPTS = 5
# One more conditional update in a share's transaction: (item with its key, actions, condition or None).
Update = tuple[Model, Sequence[Action], Condition | None]
# A condition on another item in the same transaction, writing nothing: (its model, its key, condition).
Check = tuple[type[Model], str, Condition]


class Share:
    """What one session or execution holds of its tenant's quota: {quota kind: amount}."""

    def __init__(self, tenant_id: str, amounts: dict[str, int]) -> None:
        self.tenant_id = tenant_id
        self.amounts = amounts

    @classmethod
    def session(cls, tenant_id: str, cpu_m: int, memory_mb: int) -> Share:
        return cls(tenant_id, {"sessions": 1, "cpu": cpu_m, "memory": memory_mb})

    @classmethod
    def execution(cls, tenant_id: str) -> Share:
        return cls(tenant_id, {"inflight_executions": 1})

    def take(self) -> list[Action]:
        return [_COUNTED[k][1].add(-n) for k, n in self.amounts.items()]

    def give_back(self) -> list[Action]:
        return [_COUNTED[k][1].add(n) for k, n in self.amounts.items()]

    def fits(self) -> Condition:
        cond: Condition | None = None
        for kind, n in self.amounts.items():
            term = _COUNTED[kind][1] >= n
            cond = term if cond is None else cond & term
        assert cond is not None
        return cond


def _connection(model: type[Model]) -> Any:
    return model._get_connection().connection


def _limits(r: TenantRecord | None, defaults: QuotaLimits) -> QuotaLimits:
    if r is None:
        return defaults
    return QuotaLimits(
        max_sessions=int(r.max_sessions if r.max_sessions is not None else defaults.max_sessions),
        max_inflight_executions=int(
            r.max_inflight if r.max_inflight is not None else defaults.max_inflight_executions
        ),
        max_cpu=(r.max_cpu_m / 1000) if r.max_cpu_m is not None else defaults.max_cpu,
        max_memory_mb=int(r.max_memory_mb if r.max_memory_mb is not None else defaults.max_memory_mb),
        max_requests_per_second=int(r.max_rps if r.max_rps is not None else defaults.max_requests_per_second),
    )


def _used(r: TenantRecord | None, limits: QuotaLimits, kind: str) -> int:
    limit_attr, free_attr, value = _COUNTED[kind]
    if r is None:
        return 0
    free = getattr(r, free_attr.attr_name)
    if getattr(r, limit_attr.attr_name) is None:  # not initialized: free holds minus the shares taken
        return -int(free or 0)
    return value(limits) - int(free or 0)


class DynamoTenantQuotas:
    def __init__(self, defaults: QuotaLimits) -> None:
        self.defaults = defaults
        self._request_tokens = RequestTokens()

    # -- reads -------------------------------------------------------------------------------------------
    def get(self, tenant_id: str) -> TenantQuota:
        r = get_item(TenantRecord, tenant_id)
        limits = _limits(r, self.defaults)
        usage = QuotaUsage(
            sessions=_used(r, limits, "sessions"),
            inflight_executions=_used(r, limits, "inflight_executions"),
            cpu=_used(r, limits, "cpu") / 1000,
            memory_mb=_used(r, limits, "memory"),
        )
        return TenantQuota(
            tenant_id=tenant_id, limits=limits, usage=usage, defaults=not (r is not None and r.custom)
        )

    # -- limits ------------------------------------------------------------------------------------------
    def initialize(self, tenant_id: str) -> None:
        """Write the defaults for every limit not set yet (idempotent; concurrent callers are harmless)."""
        r = get_item(TenantRecord, tenant_id)
        for limit_attr, free_attr, value in _COUNTED.values():
            if r is None or getattr(r, limit_attr.attr_name) is None:
                n = value(self.defaults)
                self._update_if(tenant_id, [limit_attr.set(n), free_attr.add(n)], limit_attr.does_not_exist())
        if r is None or r.max_rps is None:
            n = self.defaults.max_requests_per_second
            self._update_if(tenant_id, [T.max_rps.set(n)], T.max_rps.does_not_exist())

    def set_limits(self, tenant_id: str, limits: QuotaLimits) -> TenantQuota:
        """Store new limits; `free_*` moves by the difference, so usage is kept (it may exceed a lowered
        limit: new work is refused until enough ends)."""
        for _ in range(5):
            r = get_item(TenantRecord, tenant_id)
            if r is None or any(getattr(r, a.attr_name) is None for a, _f, _v in _COUNTED.values()):
                self.initialize(tenant_id)
                continue
            actions: list[Action] = [T.custom.set(True), T.max_rps.set(limits.max_requests_per_second)]
            cond: Condition = T.tenant_id.exists()
            for limit_attr, free_attr, value in _COUNTED.values():
                old, new = int(getattr(r, limit_attr.attr_name)), value(limits)
                actions.append(limit_attr.set(new))
                if new != old:
                    actions.append(free_attr.add(new - old))
                cond = cond & (limit_attr == old)
            if self._update_if(tenant_id, actions, cond):
                return self.get(tenant_id)
        raise StateConflict(f"The quotas of tenant '{tenant_id}' changed concurrently; retry")

    # -- shares ------------------------------------------------------------------------------------------
    def save_with_share(
        self,
        record: Model,
        condition: Condition,
        share: Share,
        *,
        enforce: bool,
        also: Sequence[Update] = (),
        checks: Sequence[Check] = (),
    ) -> None:
        """Save `record` (if `condition`) and take `share` in one transaction. `enforce`: only if the share
        fits the tenant's quota (else QuotaExceeded); otherwise the share is counted regardless (work the
        control plane starts itself, such as crash retries). `also`: more conditional updates in the same
        transaction (items 2, 3, ...: a TransactWriteError with `failed_at(err, 2)` names the first).
        `checks`: conditions on other items, written to nothing. pynamodb sends condition checks first, so
        with n checks they are items 0..n-1 and every other index above moves up by n."""
        for _attempt in range(_SHARE_ATTEMPTS):
            try:
                with TransactWrite(connection=_connection(type(record))) as txn:
                    txn.save(record, condition=condition)
                    txn.update(
                        TenantRecord(tenant_id=share.tenant_id),
                        actions=share.take(),
                        condition=share.fits() if enforce else None,
                    )
                    for item, actions, item_condition in also:
                        txn.update(item, actions=list(actions), condition=item_condition)
                    for model, hash_key, check in checks:
                        txn.condition_check(model, hash_key, condition=check)
                return
            except TransactWriteError as err:
                if not failed_at(err, len(checks) + 1):
                    raise
            r = get_item(TenantRecord, share.tenant_id)
            limits = [_COUNTED[kind][0].attr_name for kind in share.amounts]
            if r is None or any(getattr(r, name) is None for name in limits):
                self.initialize(share.tenant_id)  # first use: the defaults, then try again
                continue
            if not _fits(r, share):
                raise self._exceeded(r, share)
            # It fits now: the tenant's item changed between the write and this read (a concurrent request
            # gave it its defaults, a share came back). Refusing would tell the caller a false "at quota".
        raise StateConflict(f"The quota of tenant '{share.tenant_id}' changed concurrently; retry")

    @staticmethod
    def update_giving_back(
        record: Model,
        actions: Sequence[Action],
        condition: Condition,
        share: Share,
        *,
        also: Sequence[Update] = (),
    ) -> bool:
        """Update `record` if `condition` holds and give `share` back, in one transaction (with the `also`
        updates, each skipped when its own condition fails); False when `condition` failed (nothing
        written). The caller refreshes `record` from what it wrote."""
        updates = list(also)
        while True:
            try:
                with TransactWrite(connection=_connection(type(record))) as txn:
                    txn.update(record, actions=list(actions), condition=condition)
                    txn.update(TenantRecord(tenant_id=share.tenant_id), actions=share.give_back())
                    for item, item_actions, item_condition in updates:
                        txn.update(item, actions=list(item_actions), condition=item_condition)
                return True
            except TransactWriteError as err:
                if failed_at(err, 0):
                    return False
                failed = [i for i in range(len(updates)) if failed_at(err, i + 2)]
                if not failed:
                    raise
                updates = [u for i, u in enumerate(updates) if i not in failed]  # e.g. its item is gone

    def _exceeded(self, r: TenantRecord, share: Share) -> QuotaExceeded:
        limits = _limits(r, self.defaults)
        for kind, n in share.amounts.items():
            if _free(r, kind) < n:
                limit = _COUNTED[kind][2](limits)
                shown = {
                    "sessions": f"{limit} live sessions (creating or running)",
                    "inflight_executions": f"{limit} executions pending or running",
                    "cpu": f"{limit / 1000:g} cores over its live sessions",
                    "memory": f"{limit} MiB of memory over its live sessions",
                }[kind]
                return QuotaExceeded(
                    kind,  # type: ignore[arg-type]
                    f"Tenant '{share.tenant_id}' is at its quota of {shown}",
                )
        return QuotaExceeded("sessions", f"Tenant '{share.tenant_id}' is at its quota")

    # -- requests per second -----------------------------------------------------------------------------
    def take_request(self, tenant_id: str, now_s: int) -> int | None:
        """Count one request in the tenant's current one-second window: None if it fits, else the seconds
        to wait (Retry-After). Tokens are taken in blocks (adapters/dynamo/request_tokens.py)."""
        return self._request_tokens.take(tenant_id, now_s, self.initialize)

    @staticmethod
    def _update_if(tenant_id: str, actions: list[Action], condition: Condition) -> bool:
        return update_if(TenantRecord, tenant_id, actions, condition) is not None


def _free(r: TenantRecord, kind: str) -> int:
    """What `r` has free of a quota kind."""
    return int(getattr(r, _COUNTED[kind][1].attr_name) or 0)


def _fits(r: TenantRecord, share: Share) -> bool:
    """Whether `share` fits what `r` has free."""
    return all(_free(r, kind) >= n for kind, n in share.amounts.items())


def failed_at(err: TransactWriteError, index: int) -> bool:
    """Whether item `index` of a cancelled transaction failed its condition."""
    reasons = err.cancellation_reasons or []
    reason = reasons[index] if len(reasons) > index else None
    return reason is not None and reason.code == _TXN_CONDITION_FAILED

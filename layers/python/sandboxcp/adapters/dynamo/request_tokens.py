"""Requests per second per tenant, counted on the tenant's item without one write per request.

The window is the epoch second (`rps_window`); `rps_free` is the tenant's limit (`max_rps`) minus the
tokens taken in it. A process (one Lambda instance of the authorizer) takes tokens in blocks: one
conditional UpdateItem takes `n` of them (`rps_free >= n`, or a new window set to `max_rps - n`), and
the next `n - 1` requests of that second in this process spend them here, without a call.

`n` follows this process's own demand: what it counted in the current or the previous second, at most a
twentieth of the limit (so 1 under a limit of 40, exact counting). Tokens are only ever taken from the
shared count, so all instances together never admit more than the limit; what a busy instance took and
did not spend before its second ended is lost, at most a twentieth of the limit per instance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from sandboxcp.adapters.dynamo.common import get_item, update_if
from sandboxcp.adapters.tables import TenantRecord

T = TenantRecord
BLOCK_DIVISOR = 20  # a block is at most this fraction of the limit
ATTEMPTS = 4


@dataclass
class _Block:
    """This process's tokens of one tenant's window."""

    window: int = -1
    left: int = 0  # taken, not yet spent
    spent: int = 0  # requests counted in `window`
    spent_before: int = 0  # in the second before `window`
    limit: int = 0  # max_rps as last seen (0: not yet)

    def size(self) -> int:
        demand = max(self.spent, self.spent_before)
        return max(1, min(demand, self.limit // BLOCK_DIVISOR))


class RequestTokens:
    def __init__(self) -> None:
        self._blocks: dict[str, _Block] = {}
        self._lock = threading.Lock()  # the local stack runs functions in threads of one process

    def take(self, tenant_id: str, now_s: int, initialize: Callable[[str], None]) -> int | None:
        """Count one request in the tenant's current window: None if it fits, else the seconds to wait."""
        with self._lock:
            block = self._blocks.setdefault(tenant_id, _Block())
            # A thread that read the clock before another took this lock counts in the newer window: going
            # back would drop the block's tokens, and threads of a loaded process alternating between two
            # seconds would take (and lose) a block each time, down to a false "over quota".
            window_s = max(now_s, block.window)
            if block.window != window_s:
                block.spent_before = block.spent if block.window == window_s - 1 else 0
                block.window, block.left, block.spent = window_s, 0, 0
            if block.left > 0:
                block.left -= 1
                block.spent += 1
                return None
            n = block.size()
        taken, retry_after, limit = self._take_from_table(tenant_id, now_s, n, initialize)
        with self._lock:
            if limit:
                block.limit = limit
            if taken and block.window == window_s:
                block.left += taken - 1
                block.spent += 1
        return retry_after

    def _take_from_table(
        self, tenant_id: str, now_s: int, n: int, initialize: Callable[[str], None]
    ) -> tuple[int, int | None, int]:
        """(tokens taken, retry-after when none, the limit when read)."""
        window = now_s
        for _ in range(ATTEMPTS):
            # The current window, or a newer one another clock (or a later thread) opened meanwhile: this
            # request counts in it. A process whose calls wait longer than a second (a loaded local stack)
            # would otherwise find the window moved on at every attempt and refuse a request under quota.
            same_window = (T.rps_window >= window) & (T.rps_free >= n)
            limit = _update_if(tenant_id, [T.rps_free.add(-n)], same_window)
            if limit is not None:
                return n, None, limit
            new_window = (
                T.max_rps.exists()
                & (T.max_rps >= n)
                & (T.rps_window.does_not_exist() | (T.rps_window < window) | T.rps_free.does_not_exist())
            )
            opened: list[Action] = [T.rps_window.set(window), T.rps_free.set(T.max_rps - n)]
            limit = _update_if(tenant_id, opened, new_window)
            if limit is not None:
                return n, None, limit
            r = get_item(TenantRecord, tenant_id)
            if r is None or r.max_rps is None:
                initialize(tenant_id)
                continue
            current, free = int(r.rps_window or 0), int(r.rps_free or 0)
            if current >= window and free <= 0:
                return 0, max(1, current - now_s + 1), int(r.max_rps)
            # Fewer tokens are left than the block asked for, or another function's clock is ahead (its
            # window is counted in): take what fits.
            n = max(1, min(n, free if current >= window else int(r.max_rps)))
            window = max(window, current)
        return 0, 1, 0


def _update_if(tenant_id: str, actions: list[Action], condition: Condition) -> int | None:
    """The tenant's limit after the update, or None when the condition failed."""
    answer = update_if(TenantRecord, tenant_id, actions, condition, return_values="ALL_NEW")
    return None if answer is None else int(answer.get("Attributes", {}).get("max_rps", {}).get("N", "0"))

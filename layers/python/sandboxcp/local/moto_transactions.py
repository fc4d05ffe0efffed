"""moto's TransactWriteItems at the cost of the items it touches, not of the tables they are in.

moto backs up every table a transaction touches with `copy.deepcopy(table)` before applying it, to put
the tables back should the transaction be cancelled. A transaction therefore costs time in proportion to
the table's size: the local stack's submit (one transaction on the executions table) grew slower with
every execution ever recorded, and the sessions table's with every session. DynamoDB's own cost does not
grow with the table, so the local figures drifted from what is deployed as a stack aged.

This keeps moto's transaction logic as it is (conditions, cancellation reasons, one operation per item)
and changes only the backup: each touched item is copied before the transaction runs (a missing one is
noted as missing), and a cancelled transaction puts those items back. moto's own table copy is skipped
for the duration of the call (a thread-local flag, so a table backup made elsewhere meanwhile still
copies). moto applies a transaction's operations to items by key only, and keeps no other state that a
transaction changes (its indexes are computed from the items), so the items are the whole state to restore.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

_state = threading.local()
_installed: dict[str, Any] = {}


class _CopyShim:
    """What moto's module sees as `copy`: a table is not copied while a transaction runs in this thread."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(_state, "in_transaction", False) and isinstance(value, Table):
            return value  # the touched items are backed up by `_transact_write_items` instead
        return copy.deepcopy(value, memo)


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(table name, key) of each operation, as moto works them out."""
    touched = []
    for entry in transact_items:
        op = next(iter(entry.values()), None)
        if not isinstance(op, dict) or op.get("TableName") not in backend.tables:
            continue  # moto refuses it itself
        table = backend.tables[op["TableName"]]
        if "Item" in op:
            attrs = op["Item"]
            key = {a: attrs[a] for a in (table.hash_key_attr, table.range_key_attr) if a and a in attrs}
        else:
            key = op.get("Key") or {}
        touched.append((op["TableName"], key))
    return touched


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    backups = []
    for table_name, key in _touched(self, transact_items):
        try:
            current = self.get_item(table_name, key)
        except Exception:
            continue  # a malformed key: moto refuses the transaction before changing anything
        backups.append((table_name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    _state.in_transaction = True
    try:
        _installed["original"](self, transact_items)
    except BaseException:
        for table_name, key, attrs in reversed(backups):
            if attrs is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attrs)
        raise
    finally:
        _state.in_transaction = False


def install() -> None:
    """Idempotent; for the local stack's process (moto's backends are per process)."""
    import moto.dynamodb.models as models

    if "original" in _installed:
        return
    _installed["original"] = models.DynamoDBBackend.transact_write_items
    models.copy = _CopyShim()  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]

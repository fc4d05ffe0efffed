"""How the CLI prints: tables for people, JSON for scripts (`--json`), errors with their solution."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

from pydantic import BaseModel


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(to_jsonable(value), indent=2, sort_keys=False), file=out or sys.stdout)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def print_table(
    rows: Iterable[Any],
    columns: Sequence[tuple[str, Callable[[Any], Any]]],
    out: TextIO | None = None,
) -> None:
    """A plain aligned table; `columns` are (header, getter) pairs."""
    stream = out or sys.stdout
    cells = [[_cell(get(row)) for _, get in columns] for row in rows]
    headers = [h for h, _ in columns]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=stream)
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=stream)


def print_fields(pairs: Sequence[tuple[str, Any]], out: TextIO | None = None) -> None:
    """`key: value` lines, keys aligned."""
    stream = out or sys.stdout
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.ljust(width)}  {_cell(value)}", file=stream)


def print_error(err: BaseException, *, as_json: bool = False) -> None:
    """An SDK error on stderr: code and detail, then the contract's `solution` and the `request_id`."""
    from sandboxcp_client.errors import ApiError, SandboxConnectionError

    if as_json and isinstance(err, ApiError):
        body = (
            err.body
            if isinstance(err.body, dict)
            else {"error_code": err.error_code, "error_detail": err.detail}
        )
        print_json({"error": body, "status_code": err.status_code}, sys.stderr)
        return
    if isinstance(err, ApiError):
        print(f"error: {err.error_code}: {err.detail or err.description}", file=sys.stderr)
        if err.solution:
            print(f"  solution: {err.solution}", file=sys.stderr)
        if err.request_id:
            print(f"  request_id: {err.request_id}", file=sys.stderr)
        return
    print(f"error: {err}", file=sys.stderr)
    if isinstance(err, SandboxConnectionError):
        print(
            "  solution: start the local stack (./scripts/local.sh) or point SANDBOXCP_URL at your API",
            file=sys.stderr,
        )


class Progress:
    """Upload/download progress on stderr when it is a terminal (silent otherwise)."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = -1

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        pct = int(done * 100 / total) if total else -1
        if pct == self._last:
            return
        self._last = pct
        shown = f"{pct:3d}%" if pct >= 0 else f"{done} bytes"
        print(f"\r{self.label}: {shown}", end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.enabled and self._last != -1:
            print(file=sys.stderr)

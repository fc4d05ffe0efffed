"""`next_token`: the cursor of the list endpoints (sessions, executions, templates), beside the contract's
`offset`.

A token is opaque: base64url of {the index key the next page starts after, the listing's total, a hash of
the listing it belongs to}, signed with HMAC-SHA256 (`PAGE_TOKEN_KEY`; without one, a key derived from the
deployment's table names). A token that was altered, made up, or taken from another listing (another
tenant, session, filter or endpoint) is refused with 400; the repositories also check that its key lies in
the caller's own partition. Pages after the first read O(page) items: the Query starts after the key and no
count is made (the total is the one counted for the first page)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any, TypeVar

from sandboxcp.domain.errors import InvalidParameter
from sandboxcp.domain.ports import Page
from sandboxcp.settings import Settings

T = TypeVar("T")

MAX_TOKEN_CHARS = 4096
_SIG_BYTES = 16


def _key(settings: Settings) -> bytes:
    secret = settings.page_token_key or "sandboxcp-page-token:" + ",".join(
        (settings.sessions_table, settings.executions_table, settings.templates_table)
    )
    return hashlib.sha256(secret.encode()).digest()


def _scope_hash(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:24]


def encode_token(settings: Settings, scope: str, next_key: dict[str, Any] | None, total: int) -> str | None:
    """The token of the page after this one (None on the last page). `scope` names the listing, e.g.
    `sessions|<tenant>|<status>|<template>`."""
    if next_key is None:
        return None
    payload = json.dumps({"k": next_key, "t": total, "s": _scope_hash(scope)}, separators=(",", ":")).encode()
    sig = hmac.new(_key(settings), payload, hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.urlsafe_b64encode(sig + payload).decode().rstrip("=")


def decode_token(settings: Settings, scope: str, token: str) -> tuple[dict[str, Any], int]:
    """(the key to start after, the listing's total), or 400 for anything not issued for this listing."""
    refused = InvalidParameter(
        "next_token is not a token this listing issued",
        solution="Pass next_token exactly as the previous page returned it, with the same filters",
    )
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise refused from None
    sig, payload = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
    expected = hmac.new(_key(settings), payload, hashlib.sha256).digest()[:_SIG_BYTES]
    if len(sig) != _SIG_BYTES or not hmac.compare_digest(sig, expected):
        raise refused
    try:
        data = json.loads(payload)
    except ValueError:
        raise refused from None
    if not isinstance(data, dict) or data.get("s") != _scope_hash(scope):
        raise refused
    key, total = data.get("k"), data.get("t")
    if not isinstance(key, dict) or not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise refused
    return key, total


def check_offset(offset: int, next_token: str | None) -> None:
    if next_token is not None and offset:
        raise InvalidParameter(
            "Give either offset or next_token, not both", solution="Continue a listing with next_token alone"
        )


def paged(
    settings: Settings,
    scope: str,
    *,
    offset: int,
    next_token: str | None,
    fetch: Callable[[dict[str, Any] | None, bool], Page[T]],
) -> Page[T]:
    """A page by offset (first pages: counted) or by `next_token` (O(page), total from the token), with
    the token of the page after it. `fetch(start_key, with_total)` reads the repository."""
    check_offset(offset, next_token)
    if next_token is None:
        page = fetch(None, True)
        total = page.total
    else:
        start_key, total = decode_token(settings, scope, next_token)
        page = fetch(start_key, False)
    return page.model_copy(
        update={"total": total, "next_token": encode_token(settings, scope, page.next_key, total)}
    )

"""Requests resolved at the same time in threads of one process (the local stack runs every function in
one process) each see their own event: powertools keeps the current event on a class shared by every
resolver, where one tenant's handler read another's request (caught by the contract fuzzer as a 500:
a public handler met a callback's authorizer context)."""

from __future__ import annotations

import json
import threading
from typing import Any

from sandboxcp.api.resolver import caller, make_resolver


def _event(tenant: str, body: str) -> dict[str, Any]:
    return {
        "resource": "/who",
        "path": "/who",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {
            "requestId": f"req-{tenant}",
            "resourcePath": "/who",
            "httpMethod": "POST",
            "authorizer": {"tenant_id": tenant, "is_admin": "false", "principalId": tenant},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def test_a_handler_sees_its_own_request_while_another_resolver_resolves_one() -> None:
    slow, fast = make_resolver(), make_resolver()  # two functions (or two instances of one)
    inside, other_done = threading.Event(), threading.Event()

    @slow.post("/who")
    def who_slow() -> dict[str, Any]:
        inside.set()
        assert other_done.wait(10)  # another request is resolved meanwhile
        return {"tenant": caller(slow).tenant_id, "body": slow.current_event.json_body}

    @fast.post("/who")
    def who_fast() -> dict[str, Any]:
        return {"tenant": caller(fast).tenant_id, "body": fast.current_event.json_body}

    answers: dict[str, Any] = {}

    def run_slow() -> None:
        answers["slow"] = slow.resolve(_event("tenant-a", '{"code": "a"}'), None)

    thread = threading.Thread(target=run_slow)
    thread.start()
    assert inside.wait(10)
    answers["fast"] = fast.resolve(_event("tenant-b", '{"code": "b"}'), None)
    other_done.set()
    thread.join(10)
    seen = {name: json.loads(answer["body"]) for name, answer in answers.items()}
    assert seen == {
        "slow": {"tenant": "tenant-a", "body": {"code": "a"}},
        "fast": {"tenant": "tenant-b", "body": {"code": "b"}},
    }

"""`subscribe` route of the live-output WebSocket API: `{"action": "subscribe", "execution_id": ...,
"after": 0}` subscribes the connection to the caller's own execution and sends what is stored after
`after`; later chunks are pushed as the executor posts them, then `{"type": "complete"}`. A refusal is sent
as `{"type": "error", ...}` with the contract's error body (docs/streaming.md)."""

import json
from typing import Any

from pydantic import Field, StrictInt, ValidationError

from sandboxcp.api.resolver import error_body, parse_json
from sandboxcp.domain.errors import InvalidParameter, SandboxError
from sandboxcp.domain.inputs import RequestBody
from sandboxcp.domain.models import Principal
from sandboxcp.domain.output import MAX_SEQ
from sandboxcp.observability import logger
from sandboxcp.services.deps import get_deps
from sandboxcp.services.output import subscribe_execution_output


class Subscribe(RequestBody):
    action: str = Field(pattern="^subscribe$")
    execution_id: str = Field(min_length=1, max_length=64)
    after: StrictInt = Field(default=0, ge=0, le=MAX_SEQ)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ctx = event["requestContext"]
    connection_id = str(ctx["connectionId"])
    deps = get_deps()
    try:
        try:
            request = Subscribe.model_validate(parse_json(str(event.get("body") or "")))
        except ValidationError as err:
            raise InvalidParameter(f"not a subscribe message: {err.errors()[0]['msg']}") from err
        caller = Principal(tenant_id=str(ctx["authorizer"]["tenant_id"]))
        subscribe_execution_output(deps, caller, connection_id, request.execution_id, after=request.after)
    except SandboxError as err:
        answer = {"type": "error", **error_body(err, str(ctx.get("requestId") or ""))}
        deps.output_push.send(connection_id, [json.dumps(answer).encode()])
    return {"statusCode": 200}

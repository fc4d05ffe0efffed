"""POST /api/v1/sessions: record a session (`creating`) and start its launch workflow; 201 at once.

With an `Idempotency-Key` header the create happens at most once per tenant and key within 24 h: a repeat
with the same body answers 200 with the stored session, one with another body 422
(sandboxcp.services.idempotent_create)."""

from typing import Annotated, Any

from sandboxcp.api.params import Body, Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.sessions import SessionResponse
from sandboxcp.observability import prepare_init
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.requests.sessions import CreateSessionRequest

# sandboxcp.services.idempotent_create is imported where it is used: it loads powertools' Idempotency utility
# and boto3 (sandboxcp.observability, "Cold start").
_IDEMPOTENT_CREATE = "sandboxcp.services.idempotent_create"

app = make_resolver()
ROUTE = route_for("sessions_create")


@app.post(resolver_path(ROUTE.path))
def create(body: Annotated[CreateSessionRequest, Body()]) -> Response[SessionResponse]:
    from sandboxcp.services.idempotent_create import IDEMPOTENCY_HEADER, create_session_once

    key = app.current_event.headers.get(IDEMPOTENCY_HEADER)
    created = create_session_once(get_deps(), caller(app), body, key)
    status = 200 if created.replayed else 201
    return Response(status, "application/json", SessionResponse.of(created.session))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from sandboxcp.services.idempotent_create import register_lambda_context

    register_lambda_context(context)
    return _entry(event, context)


_entry = lambda_entry(app)
prepare_init([_IDEMPOTENT_CREATE])  # SnapStart: in the snapshot, not on a request

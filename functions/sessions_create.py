"""POST /api/v1/sessions: record a session (`creating`) and start its launch workflow; 201 at once."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas import SessionResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.requests import CreateSessionRequest
from sandboxcp.services.sessions import create_session

app = make_resolver()
ROUTE = route_for("sessions_create")


@app.post(resolver_path(ROUTE.path))
def create(body: Annotated[CreateSessionRequest, Body()]) -> Response[SessionResponse]:
    session = create_session(get_deps(), caller(app), body)
    return Response(201, "application/json", SessionResponse.of(session))


handler = lambda_entry(app)

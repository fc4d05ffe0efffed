"""POST /internal/executions/{execution_id}/artifacts (FR-050): the executor reports an execution's files on
their own (e.g. after an asynchronous upload), before or after its result; they are kept on the execution
and shown with its result, merged by path."""

from typing import Annotated

from pydantic import BaseModel

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.domain.workspace import Artifact
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.artifacts import ArtifactsReport, record_artifacts
from sandboxcp.services.deps import get_deps

app = make_resolver()
ROUTE = route_for("internal_execution_artifacts")


class ArtifactsRecorded(BaseModel):
    message: str
    execution_id: str
    artifacts: list[Artifact]


@app.post(resolver_path(ROUTE.path))
def report(execution_id: str, body: Annotated[ArtifactsReport, Body()]) -> ArtifactsRecorded:
    stored = record_artifacts(get_deps(), callback_session(app), execution_id, body)
    return ArtifactsRecorded(message="Artifacts recorded", execution_id=execution_id, artifacts=stored)


handler = lambda_entry(app)

"""POST /internal/sessions/{session_id}/workspace-urls: the caller's own workspace listing, or presigned GETs
of the paths it names (the files its executor lacks; docs/workspace.md)."""

from typing import Annotated, Any

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.callbacks import workspace_urls
from sandboxcp.services.deps import get_deps
from sandboxcp.services.requests.reports import WorkspaceUrlsRequest

app = make_resolver()
ROUTE = route_for("internal_workspace_urls")


@app.post(resolver_path(ROUTE.path))
def urls(session_id: str, body: Annotated[WorkspaceUrlsRequest | None, Body()] = None) -> dict[str, Any]:
    # No body, as executors before 2026-12-02 may send: the listing with a presigned GET per file.
    return workspace_urls(get_deps(), callback_session(app), session_id, body or WorkspaceUrlsRequest())


handler = lambda_entry(app)

"""POST /internal/sessions/{session_id}/workspace-urls: fresh presigned URLs for the caller's own
workspace (the executor asks when the ones it got with an execution expired)."""

from typing import Any

from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.callbacks import workspace_urls
from sandboxcp.services.deps import get_deps

app = make_resolver()
ROUTE = route_for("internal_workspace_urls")


@app.post(resolver_path(ROUTE.path))
def urls(session_id: str) -> dict[str, Any]:
    return workspace_urls(get_deps(), callback_session(app), session_id)


handler = lambda_entry(app)

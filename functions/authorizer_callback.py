"""Lambda REQUEST authorizer of the internal API: a session's callback token -> that session id.
Handlers then refuse (403) any resource of another session."""

from typing import Any

from sandboxcp.api.authorizer import authorize
from sandboxcp.observability import job_entry
from sandboxcp.services.auth import authenticate_callback
from sandboxcp.services.deps import get_deps


def _session(authorization: str | None) -> tuple[str, dict[str, str]]:
    session_id = authenticate_callback(get_deps(), authorization)
    return session_id, {"session_id": session_id}


@job_entry
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorize(event, _session)

"""GET /api/v1/sessions/{session_id}/files: the workspace's files (path, size, etag, last_modified)."""

from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.files import FileList
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.files import list_files

app = make_resolver()
ROUTE = route_for("files_list")


@app.get(resolver_path(ROUTE.path))
def list_(session_id: str) -> FileList:
    files = list_files(get_deps(), caller(app), session_id)
    return FileList(files=files, total=len(files))


handler = lambda_entry(app)

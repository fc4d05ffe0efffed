"""POST /api/v1/sessions/{session_id}/files/upload: multipart `file` (+ optional `path`, default the file
name) into the session's workspace. Files above 4 MB use files/upload-url instead (API Gateway and Lambda
payload limits)."""

from sandboxcp.api.multipart import parse_form, raw_body
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.files import UploadedFile
from sandboxcp.domain.errors import InvalidParameter
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.files import upload_file

app = make_resolver()
ROUTE = route_for("files_upload")


@app.post(resolver_path(ROUTE.path))
def upload(session_id: str) -> UploadedFile:
    event = app.current_event
    form = parse_form(event.headers.get("Content-Type"), raw_body(event.raw_event))
    if "file" not in form:
        raise InvalidParameter("The multipart field 'file' is required")
    filename, content = form["file"]
    path = form["path"][1].decode("utf-8", "replace") if "path" in form else (filename or "")
    stored = upload_file(get_deps(), caller(app), session_id, path, content)
    return UploadedFile(path=stored.path, size=stored.size)


handler = lambda_entry(app)

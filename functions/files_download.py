"""GET /api/v1/sessions/{session_id}/files/{path+}: small files inline (application/octet-stream), larger
ones 307 to a presigned GET (1 h, attachment with the file name)."""

from sandboxcp.api.params import Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.files import download

app = make_resolver()
ROUTE = route_for("files_download")


@app.get(resolver_path(ROUTE.path))
def get_file(session_id: str):  # no return annotation: a binary body, no response validation
    path = (app.current_event.path_parameters or {}).get("path", "")
    kind, payload = download(get_deps(), caller(app), session_id, path)
    if kind == "redirect":
        return Response(307, headers={"Location": str(payload)})
    assert isinstance(payload, bytes)
    filename = path.rsplit("/", 1)[-1].replace('"', "")
    return Response(
        200,
        content_type="application/octet-stream",
        body=payload,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


handler = lambda_entry(app)

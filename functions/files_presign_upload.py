"""POST /api/v1/sessions/{session_id}/files/upload-url {"path", "size"}: a presigned S3 POST for one file
(up to 100 MB) whose policy refuses more than `size` bytes. The client POSTs the form fields and the file
to `url` directly."""

from typing import Annotated

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.api.schemas.files import PresignedUpload, UploadUrlRequest
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.files import presign_upload

app = make_resolver()
ROUTE = route_for("files_presign_upload")


@app.post(resolver_path(ROUTE.path))
def presign(session_id: str, body: Annotated[UploadUrlRequest, Body()]) -> PresignedUpload:
    return PresignedUpload(**presign_upload(get_deps(), caller(app), session_id, body.path, body.size))


handler = lambda_entry(app)

"""multipart/form-data bodies (API Gateway hands them to Lambda base64-encoded). The stdlib email parser
reads MIME multipart; nothing else in the layer needs a form parser."""

from __future__ import annotations

import base64
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from sandboxcp.domain.errors import InvalidParameter


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def parse_form(content_type: str | None, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """field name -> (filename or None, bytes)."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise InvalidParameter("Send the file as multipart/form-data with fields 'file' and 'path'")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise InvalidParameter("The multipart body could not be parsed (check the boundary)")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields

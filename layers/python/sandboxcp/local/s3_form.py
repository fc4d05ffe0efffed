"""Reading a sandbox's multipart POST upload without holding it in memory: werkzeug's multipart decoder
yields the fields, and the file part's bytes go into a spooled temporary file. What is stored is what was
read here and checked: the object written is this file under the key the policy check named.

The form must be unambiguous: every field once (names compared case-insensitively), exactly one part
named `file` and nothing after it (S3 ignores fields after the file)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from sandboxcp.domain.workspace import MAX_FILE_BYTES
from sandboxcp.local.s3_auth import Refused

CHUNK = 256 * 1024
IN_MEMORY = 1024 * 1024  # spooled to disk above this
MAX_FORM_OVERHEAD = 1024 * 1024  # the fields, part headers and boundaries around a 100 MB file
MAX_BODY = MAX_FILE_BYTES + MAX_FORM_OVERHEAD
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 50

G = TypeVar("G")
_PART_EVENTS = (Field, File)  # a tuple, not `Field | File`: built once, not for every event


@dataclass
class SpooledForm(Generic[G]):
    fields: dict[str, str]  # the fields before the file, names in lower case
    file: IO[bytes]  # the file part's bytes, rewound
    grant: G  # what the check of the fields returned when the file part began
    file_size: int

    def close(self) -> None:
        self.file.close()


def boundary_of(content_type: str) -> bytes:
    mimetype, options = parse_options_header(content_type)
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary or len(boundary) > 200:
        raise Refused("not a multipart/form-data upload")
    return boundary.encode("latin-1")


def _chunks(stream: IO[bytes], length: int) -> Iterator[bytes | None]:
    """The body in chunks, then None (the end, for the decoder)."""
    remaining = length
    while remaining:
        chunk = stream.read(min(CHUNK, remaining))
        if not chunk:
            raise Refused("the upload ended before its Content-Length")
        remaining -= len(chunk)
        yield chunk
    yield None


class _FormState(Generic[G]):
    """The decoder's events, in order; `on_file` checks the fields when the file part begins."""

    def __init__(self, on_file: Callable[[dict[str, str], str | None], G]) -> None:
        self.on_file = on_file
        self.fields: dict[str, str] = {}
        self.part: Field | File | None = None
        self.value = bytearray()
        self.grant: G | None = None
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115 (returned open)
        self.file_size = 0
        self.file_done = False
        self.ended = False

    def event(self, event: Any) -> None:
        if isinstance(event, _PART_EVENTS):
            self._begin(event)
        elif isinstance(event, Data):
            self._data(event)
        elif isinstance(event, Epilogue):
            self.ended = True

    def _begin(self, part: Field | File) -> None:
        name = part.name
        if self.grant is not None:
            raise Refused("form parts after the file")
        if not isinstance(name, str) or not name:
            raise Refused("a form part has no name")
        lowered = name.lower()
        if lowered in ("key", "file") and name != lowered:
            raise Refused(f"the {lowered!r} field must be named in lower case")
        if lowered in self.fields:
            raise Refused(f"form field {lowered!r} given twice")
        if lowered != "file" and isinstance(part, File):
            raise Refused("a file part not named 'file'")
        part_type = part.headers.get("content-type")  # fields rarely have one: parse only when given
        if lowered != "file" and part_type:
            charset = parse_options_header(part_type)[1].get("charset", "utf-8")
            if charset.lower() != "utf-8":
                raise Refused("form fields must be UTF-8")
        self.part = part
        self.value = bytearray()
        if lowered == "file":
            self.grant = self.on_file(self.fields, part.filename if isinstance(part, File) else None)

    def _data(self, data: Data) -> None:
        if self.part is None:
            raise Refused("malformed form")
        if self.grant is not None:
            self.file.write(data.data)
            self.file_size += len(data.data)
            self.file_done = not data.more_data
            return
        self.value += data.data
        if len(self.value) > MAX_FIELD_BYTES:
            raise Refused("a form field is too large")
        if not data.more_data:
            try:
                self.fields[self.part.name.lower()] = self.value.decode("utf-8")
            except UnicodeDecodeError:
                raise Refused("form fields must be UTF-8") from None


def read_form(
    stream: IO[bytes], length: int, content_type: str, on_file: Callable[[dict[str, str], str | None], G]
) -> SpooledForm[G]:
    """Spool and parse the upload; `on_file(fields, filename)` runs when the file part begins (a forged
    form is refused before its file is received) and returns the grant kept in the result."""
    decoder = MultipartDecoder(boundary_of(content_type), max_parts=MAX_PARTS)
    state = _FormState(on_file)
    try:
        for chunk in _chunks(stream, length):
            decoder.receive_data(chunk)
            event = decoder.next_event()
            while not isinstance(event, NeedData):
                state.event(event)
                if state.ended:  # the decoder has nothing after the epilogue (it would raise)
                    break
                event = decoder.next_event()
        if state.grant is None or not state.file_done or not state.ended:
            raise Refused("the form has no complete file part")
        state.file.seek(0)
        return SpooledForm(state.fields, state.file, state.grant, state.file_size)
    except Refused:
        state.file.close()
        raise
    except (ValueError, RequestEntityTooLarge) as err:  # malformed form-data; more than MAX_PARTS parts
        state.file.close()
        raise Refused("malformed multipart form") from err

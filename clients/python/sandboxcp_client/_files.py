"""File sources, progress reporting and the upload plan shared by the sync and async clients."""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

# Through the API itself (API Gateway 10 MB / Lambda 6 MB payloads, base64): larger files use a presigned
# S3 POST; the server allows 100 MB per file.
INLINE_LIMIT = 4 * 1024 * 1024
MAX_FILE_BYTES = 100 * 1024 * 1024
CHUNK = 256 * 1024

Progress = Callable[[int, int | None], None]
"""Called as `progress(bytes_done, bytes_total)`; `bytes_total` is None when the size is unknown."""

FileSource = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]
"""bytes (str is encoded as UTF-8), a local path (`pathlib.Path`), or a binary file object."""


class ProgressReader(io.RawIOBase):
    """A readable, seekable view of a binary file that reports how much was read. httpx reads upload
    bodies through it (in 64 KiB chunks), so the callback follows the bytes actually sent."""

    def __init__(self, raw: IO[bytes], total: int, progress: Progress | None) -> None:
        super().__init__()
        self._raw = raw
        self._start = raw.tell() if raw.seekable() else 0
        self.total = total
        self.done = 0
        self._progress = progress

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(-1 if size is None else size)
        if data:
            self.done += len(data)
            if self._progress is not None:
                self._progress(min(self.done, self.total), self.total)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = self._raw.seek(self._start + offset) - self._start
            self.done = pos
            return pos
        if whence == os.SEEK_END:
            self._raw.seek(self._start + self.total + offset)
            return self.total + offset
        return self._raw.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._raw.tell() - self._start


@dataclass
class OpenedSource:
    """An upload's bytes as a rewindable file object, with its size and a default name."""

    file: IO[bytes]
    size: int
    name: str
    owned: bool  # opened here: closed by `close()`

    def reader(self, progress: Progress | None) -> ProgressReader:
        self.file.seek(0)
        return ProgressReader(self.file, self.size, progress)

    def close(self) -> None:
        if self.owned:
            self.file.close()


def open_source(data: FileSource) -> OpenedSource:
    if isinstance(data, str):
        raw = data.encode("utf-8")
        return OpenedSource(io.BytesIO(raw), len(raw), "file", owned=True)
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        return OpenedSource(io.BytesIO(raw), len(raw), "file", owned=True)
    if isinstance(data, os.PathLike):
        path = Path(data)
        return OpenedSource(path.open("rb"), path.stat().st_size, path.name, owned=True)
    if not data.seekable():  # a pipe or socket: buffer it, uploads must be sized and rewindable
        raw = data.read()
        return OpenedSource(io.BytesIO(raw), len(raw), "file", owned=True)
    start = data.tell()
    size = data.seek(0, os.SEEK_END) - start
    data.seek(start)
    name = os.path.basename(str(getattr(data, "name", "") or "file"))
    return OpenedSource(cast(IO[bytes], _Window(data, start)), size, name, owned=False)


class _Window(io.RawIOBase):
    """A caller's file seen from its current position (its earlier bytes are not part of the upload)."""

    def __init__(self, raw: IO[bytes], start: int) -> None:
        super().__init__()
        self._raw, self._start = raw, start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._raw.read(-1 if size is None else size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            return self._raw.seek(self._start + offset) - self._start
        return self._raw.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._raw.tell() - self._start


def file_name(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) or "file"


def check_size(size: int) -> None:
    if size > MAX_FILE_BYTES:
        from sandboxcp_client.errors import InvalidParameterError

        raise InvalidParameterError(
            400,
            "Sandbox.InvalidParameter",
            "Invalid parameter",
            f"the file is {size} bytes; one file may be at most 100 MB",
            "Split the file, or compress it",
        )


def total_from(headers: Any) -> int | None:
    value = headers.get("content-length")
    return int(value) if value and value.isdigit() else None

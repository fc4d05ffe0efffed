"""Workspace sync with S3 through the presigned plan that comes with each execution.

Before the run, every planned file whose etag this agent has not synced yet is fetched with its
presigned GET into the workspace; after the run, every file the run wrote is uploaded with the
plan's POST policy (one multipart/form-data POST per file) and becomes an artifact of the result.
The path -> etag manifest lives in memory only: a restarted agent downloads everything again.

Files never land outside the workspace: planned paths must be plain relative paths (no ``..``,
``.`` or empty segments, no absolute path, backslash or control character), and every directory
on the way is opened relative to the workspace's descriptor with ``O_NOFOLLOW``, so a symlink
(left by user code, say) can never lead a write, or a read for an upload, out of it. A download
goes to a temporary file in its target directory and is renamed over the target when complete.

Bodies are streamed both ways (a 100 MB file never needs 100 MB of memory). Connection errors,
5xx, 429 and S3's ``SlowDown`` / ``RequestTimeout`` are retried a few times with backoff; other
statuses are final. Presigned URLs carry their signature in the query: they are never logged, and
reasons given to the user name files and statuses, never URLs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import errno
import functools
import hashlib
import http.client
import json
import mimetypes
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sandbox_executor import __version__
from sandbox_executor.artifacts import DIR_FLAGS, workspace_usage
from sandbox_executor.contract import MAX_PRESIGN_PATHS, path_problem
from sandbox_executor.http_client import Endpoint, KeptConnections, presigned_target
from sandbox_executor.logs import log
from sandbox_executor.validation import Download, UploadPolicy, WorkspacePlan

ATTEMPTS = 4  # per request: the first try and three retries
RETRY_DELAYS_S = (0.25, 0.5, 1.0)
TIMEOUT_S = 60.0  # per socket operation, not per transfer
CHUNK = 1 << 20
MAX_NOTES = 20  # lines added to stderr about files not saved, at most
TRANSFER_WORKERS = 8  # downloads or uploads in flight at once: many small files wait on round trips
_ERROR_BODY_BYTES = 4096
_TRANSIENT_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"})
_S3_CODE_RE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
_TEMP_PREFIX = ".sbx-download-"
_USER_AGENT = f"sandbox-executor/{__version__}"

T = TypeVar("T")


class SyncError(Exception):
    """A file could not be synced; ``str()`` says which and why (never a URL).

    ``fatal``: the cause is not specific to the file (S3 unreachable, the policy refused), so the
    other files of the same sync would fail the same way.
    """

    def __init__(self, reason: str, path: str | None = None, *, fatal: bool = False) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason  # without the file name, for the log
        self.fatal = fatal


class _Transient(Exception):
    """Worth another try (5xx, SlowDown, a connection cut short)."""


@dataclass
class Uploaded:
    """What the post-run sync saved (the result's ``artifacts``) and the lines for stderr."""

    artifacts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def guess_mime(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def artifact(path: str, size: int) -> dict[str, Any]:
    return {"path": path, "size": size, "mime_type": guess_mime(path), "type": "artifact"}


@contextlib.contextmanager
def _local(path: str | None) -> Iterator[None]:
    """Local filesystem failures are final (retrying a full disk will not help)."""
    try:
        yield
    except OSError as exc:
        raise SyncError(exc.strerror or type(exc).__name__, path) from None


def _open_dir(parent_fd: int, name: str, create: bool, path: str) -> int:
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, dir_fd=parent_fd)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SyncError(f"'{name}' is a symlink or not a directory", path) from None
        raise


def _open_parent(ws_fd: int, path: str, *, create: bool) -> tuple[int, str]:
    """A descriptor of ``path``'s directory, walked down from the workspace without following any
    symlink (creating missing directories when ``create``), and the file's own name."""
    *dirs, name = path.split("/")
    fd = os.dup(ws_fd)
    try:
        for part in dirs:
            child = _open_dir(fd, part, create, path)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _describe(exc: BaseException) -> str:
    """A transport error, briefly (its text never holds a request URL)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


def _status_error(resp: http.client.HTTPResponse, path: str) -> Exception:
    """The exception for a non-2xx answer: _Transient if worth retrying, else a final SyncError."""
    try:
        body = resp.read(_ERROR_BODY_BYTES)
    except (OSError, http.client.HTTPException):
        body = b""
    match = _S3_CODE_RE.search(body)
    code = match.group(1).decode() if match else ""
    reason = f"HTTP {resp.status}" + (f" {code}" if code else "")
    if resp.status >= 500 or resp.status == 429 or code in _TRANSIENT_CODES:
        return _Transient(reason)
    # 403 is the policy or signature (expired, refused): the same for every file.
    return SyncError(reason, path, fatal=resp.status == 403)


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    value = resp.getheader("Content-Length")
    return int(value) if value and value.isdigit() else None


def _etag(resp: http.client.HTTPResponse) -> str:
    return (resp.getheader("ETag") or "").strip().removeprefix("W/").strip('"')


def _md5() -> Any:
    try:
        return hashlib.md5(usedforsecurity=False)
    except ValueError:  # FIPS builds may refuse MD5 altogether
        return None


def _policy_allows(policy: str | None, field_name: str) -> bool:
    """Whether the POST policy has a condition on ``field_name``.

    S3 refuses a form field that no policy condition names ("Extra input fields"). A policy we
    cannot read is assumed to allow it.
    """
    if not policy:
        return True
    try:
        conditions = json.loads(base64.b64decode(policy)).get("conditions")
    except (ValueError, binascii.Error, AttributeError):
        return True
    if not isinstance(conditions, list):
        return True
    wanted = field_name.lower()
    for condition in conditions:
        if isinstance(condition, dict) and any(str(k).lower() == wanted for k in condition):
            return True
        if isinstance(condition, list) and len(condition) == 3 and str(condition[1]).lower() == "$" + wanted:
            return True
    return False


def _quote(value: str) -> str:
    """A multipart parameter value, escaped the way browsers do."""
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class WorkspaceSync:
    """Syncs one workspace; used by the execution worker only (no locking)."""

    def __init__(self, workspace: str, via: str | None = None) -> None:
        self.workspace = workspace
        self._via = Endpoint.parse(via) if via else None
        self.manifest: dict[str, str] = {}  # path -> etag this agent last synced (either way)
        # The workspace revision (WorkspacePlan.rev) this agent last downloaded whole; None: unknown.
        # It starts at 0: until the first write through the API (revision 1) the session's workspace
        # holds only what this sandbox uploaded itself, which its /workspace has (an agent restarted
        # in the same sandbox finds it there too). So a new session's first run asks for no listing.
        self.synced_rev: int | None = 0
        self.sleep: Callable[[float], None] = time.sleep
        self._execution_id: str | None = None  # for the retry log lines
        # Asks the control plane for presigned GETs of these paths (app.py sets it): path -> URL, or None
        # when it cannot be had. For listed files that came without one (``Download.url`` None).
        self.presign: Callable[[list[str]], dict[str, str] | None] | None = None

    # -- before the run ---------------------------------------------------------------------------

    def download(self, plan: WorkspacePlan, execution_id: str | None = None) -> int:
        """Fetch the planned files this agent lacks; raises SyncError.

        Returns the newest mtime (ns) of the files written, 0 if none: the run's artifacts are
        the files modified after its start, which must come after these.
        """
        self._execution_id = execution_id
        if plan.downloads is None:  # unchanged since plan.rev, which the caller checked this agent has
            return 0
        self.synced_rev = None  # until this download is whole
        for item in plan.downloads:
            problem = path_problem(item.path)
            if problem:
                log("workspace_download_failed", execution_id=execution_id, error="unsafe_path")
                raise SyncError(f"refusing to write {item.path!r}: {problem}")
        todo = [item for item in plan.downloads if not self._have(item)]
        started = time.monotonic()
        total = newest = done = 0
        try:
            if todo:
                todo = self._presigned(todo)
                with _local("workspace"):
                    ws_fd = os.open(self.workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                pool = ThreadPoolExecutor(TRANSFER_WORKERS, thread_name_prefix="download")
                connections = KeptConnections()
                try:
                    one = functools.partial(self._download_one, ws_fd, connections)
                    fetching = [(item, pool.submit(one, item)) for item in todo]
                    for item, future in fetching:  # the first failure ends the sync (the rest is cancelled)
                        size, etag, mtime_ns = future.result()
                        self.manifest[item.path] = etag
                        total += size
                        newest = max(newest, mtime_ns)
                        done += 1
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)  # before the fd the transfers write through
                    connections.close()
                    os.close(ws_fd)
        except SyncError as exc:
            log(
                "workspace_download_failed",
                execution_id=execution_id,
                files=done,
                bytes=total,
                error=exc.reason,
            )
            raise
        log(
            "workspace_downloaded",
            execution_id=execution_id,
            files=done,
            unchanged=len(plan.downloads) - len(todo),
            bytes=total,
            ms=round((time.monotonic() - started) * 1000.0, 1),
        )
        self.synced_rev = plan.rev
        return newest

    def _presigned(self, todo: list[Download]) -> list[Download]:
        """``todo``, each with a presigned GET: for those listed without one, asked for in batches of
        MAX_PRESIGN_PATHS. Presigning costs the control plane about a millisecond a file, and an agent
        that keeps its /workspace lacks few of the files listed."""
        unsigned = [item.path for item in todo if item.url is None]
        if not unsigned:
            return todo
        urls: dict[str, str] = {}
        for start in range(0, len(unsigned), MAX_PRESIGN_PATHS):
            got = self.presign(unsigned[start : start + MAX_PRESIGN_PATHS]) if self.presign else None
            if got is None:
                raise SyncError("the control plane gave no presigned URLs for the workspace's files")
            urls.update(got)
        for path in unsigned:
            if path not in urls:
                raise SyncError("the control plane gave no presigned URL for it", path)
        return [
            item if item.url is not None else dataclasses.replace(item, url=urls[item.path]) for item in todo
        ]

    def _have(self, item: Download) -> bool:
        """Synced before with this etag, and still there (code may have deleted it since)."""
        if not item.etag or self.manifest.get(item.path) != item.etag:
            return False
        try:
            return stat.S_ISREG(os.lstat(os.path.join(self.workspace, item.path)).st_mode)
        except OSError:
            return False

    def _download_one(self, ws_fd: int, connections: KeptConnections, item: Download) -> tuple[int, str, int]:
        with _local(item.path):
            parent_fd, name = _open_parent(ws_fd, item.path, create=True)
        try:
            return self._retrying(lambda: self._fetch(connections, parent_fd, name, item), item.path)
        finally:
            os.close(parent_fd)

    def _fetch(
        self, connections: KeptConnections, parent_fd: int, name: str, item: Download
    ) -> tuple[int, str, int]:
        try:
            where = presigned_target(item.url or "", self._via)
        except ValueError as exc:
            raise SyncError(str(exc), item.path) from None
        headers = {"User-Agent": _USER_AGENT}
        with connections.open_stream(where, "GET", headers=headers, timeout=TIMEOUT_S) as resp:
            if resp.status != 200:
                raise _status_error(resp, item.path)
            expected = _content_length(resp)
            temp = _TEMP_PREFIX + secrets.token_hex(8)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            with _local(item.path):
                fd = os.open(temp, flags, 0o666, dir_fd=parent_fd)
            renamed = False
            try:
                received = 0
                while chunk := resp.read(CHUNK):  # transport errors: retried
                    with _local(item.path):
                        _write_all(fd, chunk)
                    received += len(chunk)
                if expected is not None and received != expected:
                    raise _Transient(f"connection closed after {received} of {expected} bytes")
                with _local(item.path):
                    mtime_ns = os.fstat(fd).st_mtime_ns
                    os.close(fd)
                    fd = -1
                    # rename() replaces a symlink at the target itself, never what it points to.
                    os.replace(temp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
                renamed = True
            finally:
                if fd >= 0:
                    os.close(fd)
                if not renamed:
                    with contextlib.suppress(OSError):
                        os.unlink(temp, dir_fd=parent_fd)
            return received, _etag(resp) or item.etag, mtime_ns

    # -- after the run ----------------------------------------------------------------------------

    def upload(
        self, plan: WorkspacePlan, files: list[tuple[str, int]], execution_id: str | None = None
    ) -> Uploaded:
        """Upload the run's ``files`` (``(path, size)``) unless the workspace is over its quota."""
        self._execution_id = execution_id
        out = Uploaded()
        if not files:
            return out
        if plan.quota_bytes is not None:
            used = workspace_usage(self.workspace)
            if used > plan.quota_bytes:
                log(
                    "workspace_quota_exceeded",
                    execution_id=execution_id,
                    bytes=used,
                    quota=plan.quota_bytes,
                    files=len(files),
                )
                out.notes.append(
                    f"workspace quota exceeded: {used} of {plan.quota_bytes} bytes; "
                    "files of this run were not saved"
                )
                return out
        policy = plan.upload
        send_type = "content-type" not in {k.lower() for k in policy.fields} and _policy_allows(
            policy.fields.get("policy"), "Content-Type"
        )
        started = time.monotonic()
        total = skipped = failed = 0
        problems: list[str] = []
        try:
            ws_fd = os.open(self.workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            out.notes.append(f"workspace files not saved: workspace unavailable ({exc.strerror})")
            return out
        pool = ThreadPoolExecutor(TRANSFER_WORKERS, thread_name_prefix="upload")
        connections = KeptConnections()
        try:
            safe = []
            for path, _ in files:
                problem = path_problem(path)
                if problem:
                    skipped += 1
                    problems.append(f"workspace file not saved: {path!r}: {problem}")
                else:
                    safe.append(path)
            # Several at once: a run that writes 1,000 small files waits on round trips, not bytes. Results
            # are taken in order, so notes and artifacts keep the run's order.
            # One boundary for the whole sync: a receiver that compiles a pattern per boundary (werkzeug's
            # decoder, in the local forwarder) does so once. Picked after the run, so its code cannot know it.
            boundary = "sandbox-executor-" + secrets.token_hex(16)
            one = functools.partial(
                self._upload_one, ws_fd, connections, policy, send_type=send_type, boundary=boundary
            )
            pending = [(path, pool.submit(one, path)) for path in safe]
            given_up = 0  # uploads not tried after a fatal error (the policy refused, S3 unreachable, ...)
            for path, future in pending:
                if future.cancelled():
                    given_up += 1
                    continue
                try:
                    saved = future.result()
                except SyncError as exc:
                    failed += 1
                    problems.append(f"workspace file not saved: {exc}")
                    if exc.fatal:
                        for _, later in pending:
                            later.cancel()
                    continue
                if saved is None:
                    skipped += 1
                    problems.append(
                        f"workspace file not saved: {path} is over the {policy.max_bytes} byte limit per file"
                    )
                    continue
                size, etag = saved
                self.manifest[path] = etag
                total += size
                out.artifacts.append(artifact(path, size))
            if given_up:
                failed += given_up
                problems.append(f"workspace files not saved: {given_up} more, for the same reason")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # before the workspace fd the uploads read through
            connections.close()
            os.close(ws_fd)
        if len(problems) > MAX_NOTES:
            problems[MAX_NOTES - 1 :] = [f"... and {len(problems) - MAX_NOTES + 1} more files not saved"]
        out.notes.extend(problems)
        log(
            "workspace_uploaded",
            execution_id=execution_id,
            files=len(out.artifacts),
            bytes=total,
            skipped=skipped or None,
            failed=failed or None,
            ms=round((time.monotonic() - started) * 1000.0, 1),
        )
        return out

    def _upload_one(
        self,
        ws_fd: int,
        connections: KeptConnections,
        policy: UploadPolicy,
        path: str,
        *,
        send_type: bool,
        boundary: str,
    ) -> tuple[int, str] | None:
        """(size, etag) once uploaded, None if too large; raises SyncError."""
        parent_fd = fd = -1
        try:
            with _local(path):
                parent_fd, name = _open_parent(ws_fd, path, create=False)
                # O_NONBLOCK: a FIFO swapped in meanwhile must not hang the worker on open().
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                fd = os.open(name, flags, dir_fd=parent_fd)
                st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SyncError("not a regular file", path)
            if policy.max_bytes is not None and st.st_size > policy.max_bytes:
                return None
            size = st.st_size
            return self._retrying(
                lambda: self._post(connections, policy, path, fd, size, send_type, boundary), path
            )
        finally:
            for open_fd in (fd, parent_fd):
                if open_fd >= 0:
                    os.close(open_fd)

    def _post(
        self,
        connections: KeptConnections,
        policy: UploadPolicy,
        path: str,
        fd: int,
        size: int,
        send_type: bool,
        boundary: str,
    ) -> tuple[int, str]:
        try:
            where = presigned_target(policy.url, self._via)
        except ValueError as exc:
            raise SyncError(f"upload {exc}", path, fatal=True) from None
        mime = guess_mime(path)
        parts = []
        for name, value in policy.fields.items():
            if name == "key":
                template = value if "${filename}" in value else policy.key_prefix + "${filename}"
                value = template.replace("${filename}", path)
            parts.append((name, value))
        if "key" not in policy.fields:
            parts.insert(0, ("key", policy.key_prefix + path))
        if send_type:
            parts.append(("Content-Type", mime))
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
            for name, value in parts
        )
        filename = _quote(path.rsplit("/", 1)[-1])
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {mime}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        digests: list[Any] = []  # of each body made (a kept connection found closed sends it again)

        def body() -> Iterator[bytes]:
            md5 = _md5()
            digests.append(md5)
            yield head
            offset = 0
            while offset < size:
                with _local(path):
                    chunk = os.pread(fd, min(CHUNK, size - offset), offset)
                if not chunk:
                    raise SyncError("the file shrank while it was uploaded", path)
                if md5 is not None:
                    md5.update(chunk)
                offset += len(chunk)
                yield chunk
            yield tail

        headers = {
            "User-Agent": _USER_AGENT,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        with connections.open_stream(where, "POST", body=body, headers=headers, timeout=TIMEOUT_S) as resp:
            if not 200 <= resp.status < 300:
                raise _status_error(resp, path)
            resp.read(_ERROR_BODY_BYTES)
            # S3 answers with the object's ETag; some S3 look-alikes (moto) do not, and the ETag
            # of a single-part upload is the MD5 of its bytes.
            md5 = digests[-1]
            return size, _etag(resp) or (md5.hexdigest() if md5 is not None else "")

    # -- retries ----------------------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], T], path: str) -> T:
        for number in range(1, ATTEMPTS + 1):
            try:
                return attempt()
            except _Transient as exc:
                reason = str(exc)
            except (OSError, http.client.HTTPException) as exc:  # transport (local errors are SyncError)
                reason = _describe(exc)
            if number == ATTEMPTS:
                raise SyncError(f"{reason} (gave up after {ATTEMPTS} attempts)", path, fatal=True)
            delay = RETRY_DELAYS_S[min(number, len(RETRY_DELAYS_S)) - 1]
            log(
                "workspace_retry",
                execution_id=self._execution_id,
                attempt=number,
                error=reason,
                retry_in_s=delay,
            )
            self.sleep(delay)
        raise AssertionError("unreachable")

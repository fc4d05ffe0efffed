"""One execution: sync the workspace in, pick the language's command, run it, sync the files it
wrote out, and turn the outcome into a result report (those files being its ``artifacts``).

The syncs (workspace.py) happen around the run, outside its duration and metrics. Without a
workspace plan the files the run wrote are still reported as artifacts, but nothing is uploaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox_executor.artifacts import run_clock_ns, scan_artifacts
from sandbox_executor.bootstrap_node import NODE_BOOTSTRAP
from sandbox_executor.bootstrap_python import PYTHON_BOOTSTRAP
from sandbox_executor.config import Config
from sandbox_executor.contexts import ContextError, Contexts
from sandbox_executor.forkserver import ForkServer
from sandbox_executor.identity import Identity
from sandbox_executor.logs import log
from sandbox_executor.process import (
    RETURN_LIMIT,
    ChildRegistry,
    OnOutput,
    ProcessResult,
    SpawnError,
    run_process,
)
from sandbox_executor.validation import ExecutionRequest, WorkspacePlan
from sandbox_executor.workspace import SyncError, WorkspaceSync, artifact

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Linux refuses a single argv/env string of 128 KiB or more (MAX_ARG_STRLEN) with E2BIG. A bigger
# event is only given on stdin rather than failing the exec; a bigger shell script cannot run as
# `bash -c` and fails with a clear message.
MAX_ARG_BYTES = 128 * 1024 - 1
MAX_EVENT_ENV_BYTES = 100_000
_RESERVED_PREFIXES = ("SANDBOXCP_", "AWS_")
# The run's start must be later than the mtime of every file synced in. File times come from a
# clock that ticks every few ms, so this waits a tick at most (the bound is for a clock that stalls).
MAX_START_WAIT_S = 1.0


@dataclass
class RunOutcome:
    """What the result callback reports (internal-api.yaml ``ExecutionResultReport``)."""

    status: str  # success | failed | timeout | crashed (a context's interpreter died)
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    return_value: Any = None
    duration_ms: float = 0.0
    cpu_time_ms: float = 0.0
    peak_memory_mb: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # {path, size, mime_type, type}
    outputs: list[dict[str, Any]] | None = None  # a context cell's rich outputs (MIME bundles)

    def to_report(self) -> dict[str, Any]:
        report = {
            "status": self.status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "execution_time": round(self.duration_ms / 1000.0, 6),
            "return_value": self.return_value,
            "metrics": {
                "duration_ms": self.duration_ms,
                "cpu_time_ms": self.cpu_time_ms,
                "peak_memory_mb": self.peak_memory_mb,
            },
            "artifacts": [dict(a) for a in self.artifacts],
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
        }
        if self.outputs is not None:
            report["outputs"] = self.outputs
        return report


SHRUNK_OUTPUT_BYTES = 256 * 1024


def shrink_report(outcome: RunOutcome) -> dict[str, Any]:
    """A reduced report for when the control plane answers 413 to the full one."""
    note = "\n[result too large for the control plane: output cut and return value dropped]"
    out = outcome.stdout.encode()[:SHRUNK_OUTPUT_BYTES].decode("utf-8", "replace")
    err = outcome.stderr.encode()[:SHRUNK_OUTPUT_BYTES].decode("utf-8", "replace") + note
    report = outcome.to_report()
    report.update(
        stdout=out,
        stderr=err,
        return_value=None,
        status="failed" if outcome.status == "success" else outcome.status,
        stdout_truncated=outcome.stdout_truncated or len(out) < len(outcome.stdout),
        stderr_truncated=True,
    )
    return report


def child_env(workspace: str, environ: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment for user code.

    Everything of the executor's own except ``SANDBOXCP_*`` (the callback token must never reach
    user code) and ``AWS_*`` (credentials of whatever launched us); HOME is the workspace.
    """
    env = {k: v for k, v in environ.items() if not k.startswith(_RESERVED_PREFIXES)}
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    env["HOME"] = workspace
    return env


class Runner:
    def __init__(
        self,
        config: Config,
        registry: ChildRegistry,
        environ: Mapping[str, str] | None = None,
        identity: Identity | None = None,
        *,
        use_forkserver: bool = True,
        contexts: Contexts | None = None,
    ):
        self._config = config
        self._registry = registry
        self._identity = identity  # its binding's env is added to user code's (warm-pool mode)
        self._base_env = child_env(config.workspace, os.environ if environ is None else environ)
        self.workspace_sync = WorkspaceSync(config.workspace, config.s3_via)
        self.forkserver = ForkServer(sys.executable, registry) if use_forkserver else None
        self.contexts = contexts
        # Asks the control plane for the workspace's listing (app.py sets it): a plan without downloads
        # says "unchanged since rev", and an agent that has not synced that rev needs the listing.
        self.fetch_listing: Callable[[], WorkspacePlan | None] | None = None
        self._last_listed_ns = 0  # when the last run's artifacts were listed (run clock)

    def _binary(self, name: str) -> str:
        found = shutil.which(name, path=self._base_env.get("PATH"))
        if found is None:
            raise SpawnError(f"{name!r} not found on PATH")
        return found

    def run(self, req: ExecutionRequest, on_output: OnOutput | None = None) -> RunOutcome:
        plan = req.workspace
        newest_input_ns = 0
        if plan is not None:
            try:
                plan = self._listed(plan)
                newest_input_ns = self.workspace_sync.download(plan, req.execution_id)
            except SyncError as exc:
                return sync_failure(str(exc))
            except Exception as exc:  # a sync bug must not cost the user a clear answer
                log("workspace_sync_error", execution_id=req.execution_id, error=type(exc).__name__)
                return sync_failure(f"internal error ({type(exc).__name__})")
        try:
            # Started after the previous run's artifacts were taken: file times have the coarse clock's
            # tick, so a run begun in the tick the last one ended in would take its files for its own.
            not_before_ns = max(newest_input_ns, self._last_listed_ns)
            outcome, started_ns = self._run(req, not_before_ns, on_output)
        except SpawnError as exc:
            return spawn_failure(req.language, str(exc))
        # Timeouts and failures too: partial outputs are worth keeping.
        files, newest_ns = scan_artifacts(self._config.workspace, started_ns)
        self._last_listed_ns = max(run_clock_ns(), newest_ns)
        if plan is None:
            outcome.artifacts = [artifact(path, size) for path, size in files]
            return outcome
        try:
            saved = self.workspace_sync.upload(plan, files, req.execution_id)
        except Exception as exc:  # keep the run's own outcome whatever happens here
            log("workspace_sync_error", execution_id=req.execution_id, error=type(exc).__name__)
            note = f"workspace sync failed: internal error ({type(exc).__name__})"
            outcome.stderr = _append_line(outcome.stderr, note)
            return outcome
        outcome.artifacts = saved.artifacts
        for note in saved.notes:
            outcome.stderr = _append_line(outcome.stderr, note)
        return outcome

    def _listed(self, plan: WorkspacePlan) -> WorkspacePlan:
        """`plan`, or the control plane's listing when the plan has none and this agent has not synced
        its revision (a new agent, or files written through the API since)."""
        if plan.downloads is not None or plan.rev == self.workspace_sync.synced_rev:
            return plan
        listed = self.fetch_listing() if self.fetch_listing is not None else None
        if listed is None or listed.downloads is None:
            raise SyncError("the workspace changed and its listing could not be had from the control plane")
        return listed

    def _run(
        self, req: ExecutionRequest, not_before_ns: int, on_output: OnOutput | None
    ) -> tuple[RunOutcome, int]:
        """The outcome, and the run's start on the file clock (after ``not_before_ns``)."""
        if req.context_id is not None:
            started_ns = _start_after(not_before_ns)
            return self._run_cell(req, req.context_id, on_output), started_ns
        event_json = json.dumps(req.event)
        env = self.child_environment()
        return_pipe = True
        if req.language == "python":
            argv = [sys.executable, "-u", "-c", PYTHON_BOOTSTRAP]
            stdin = json.dumps({"code": req.code, "event": req.event}).encode()
        elif req.language == "javascript":
            argv = [self._binary(self._config.node_bin), "-e", NODE_BOOTSTRAP]
            stdin = json.dumps({"code": req.code, "event": req.event}).encode()
        else:
            size = len(req.code.encode("utf-8", "surrogatepass"))
            if size > MAX_ARG_BYTES:
                raise SpawnError(f"shell code is {size} bytes; `bash -c` takes at most {MAX_ARG_BYTES}")
            argv = [self._binary(self._config.bash_bin), "-c", req.code]
            # The contract's raw stdin, when it was given instead of an event, reaches the script as
            # is; the event gets a final newline so that `read` succeeds on it.
            stdin = (req.stdin if req.stdin is not None else event_json + "\n").encode("utf-8", "replace")
            if len(event_json) <= MAX_EVENT_ENV_BYTES:
                env["SANDBOX_EVENT"] = event_json
            return_pipe = False
        started_ns = _start_after(not_before_ns)
        if req.language == "python" and self.forkserver is not None:
            try:
                forked = self.forkserver.run(
                    env=env,
                    cwd=self._config.workspace,
                    stdin_data=stdin,
                    timeout_s=req.timeout,
                    on_output=on_output,
                )
                return outcome_from(forked, req.timeout), started_ns
            except SpawnError as exc:
                log("forkserver_unavailable", execution_id=req.execution_id, error=str(exc))
        result = run_process(
            argv,
            env=env,
            cwd=self._config.workspace,
            stdin_data=stdin,
            timeout_s=req.timeout,
            return_pipe=return_pipe,
            registry=self._registry,
            on_output=on_output,
        )
        return outcome_from(result, req.timeout), started_ns

    def child_environment(self) -> dict[str, str]:
        """What user code's environment is: ours minus secrets, plus the session's env vars."""
        env = dict(self._base_env)
        if self._identity is not None:
            env.update(self._identity.env())  # names already checked: no SANDBOXCP_* nor AWS_*
            env["HOME"] = self._config.workspace
        return env

    def _run_cell(self, req: ExecutionRequest, context_id: str, on_output: OnOutput | None) -> RunOutcome:
        try:
            if self.contexts is None:
                raise ContextError("NotFound", "this executor has no contexts")
            kernel = self.contexts.get(context_id)
        except ContextError:
            return RunOutcome(status="failed", exit_code=-1, stderr=f"context {context_id} not found\n")
        if kernel.language != req.language:
            detail = f"context {context_id} runs {kernel.language}, not {req.language}\n"
            return RunOutcome(status="failed", exit_code=-1, stderr=detail)
        cell = kernel.run(
            req.code,
            execution_id=req.execution_id,
            workspace=self._config.workspace,
            timeout_s=req.timeout,
            on_output=on_output,
        )
        stderr = cell.stderr.text()
        return RunOutcome(
            status=cell.status,
            exit_code=cell.exit_code,
            stdout=cell.stdout.text(),
            stderr=_append_line(stderr, cell.note) if cell.note else stderr,
            return_value=cell.result_text,
            duration_ms=cell.duration_ms,
            cpu_time_ms=cell.cpu_time_ms,
            peak_memory_mb=cell.peak_memory_mb,
            stdout_truncated=cell.stdout.truncated,
            stderr_truncated=cell.stderr.truncated,
            outputs=cell.outputs,
        )


def _start_after(not_before_ns: int) -> int:
    """``run_clock_ns()``, once it is past ``not_before_ns`` (the files synced in are not artifacts)."""
    now = run_clock_ns()
    deadline = time.monotonic() + MAX_START_WAIT_S
    while now <= not_before_ns and time.monotonic() < deadline:
        time.sleep(0.001)
        now = run_clock_ns()
    # Read again: a process descheduled past the deadline (a loaded machine) held a stale `now`, while the
    # clock went on meanwhile (a run taking the previous run's files for its own was seen so).
    return now if now > not_before_ns else run_clock_ns()


def sync_failure(reason: str) -> RunOutcome:
    """The workspace could not be synced in: the code is not run."""
    return RunOutcome(status="failed", exit_code=-1, stderr=f"workspace sync failed: {reason}\n")


def spawn_failure(language: str, reason: str) -> RunOutcome:
    """The child never started (missing runtime, E2BIG, bad workspace...)."""
    return RunOutcome(
        status="failed", exit_code=-1, stderr=f"failed to start the {language} runtime: {reason}\n"
    )


def outcome_from(result: ProcessResult, timeout_s: int) -> RunOutcome:
    stderr = result.stderr.text()
    return_value: Any = None
    if result.timed_out:
        status, exit_code = "timeout", -1
        stderr = _append_line(stderr, f"Execution timeout after {timeout_s} seconds")
    elif result.exit_code is None:
        status, exit_code = "failed", -1
        stderr = _append_line(stderr, "Execution ended without an exit status")
    elif result.exit_code < 0:
        # Killed by a signal (the OOM killer sends SIGKILL): report it the shell's way, 128 + N,
        # since the contract keeps -1 for timeouts.
        signum = -result.exit_code
        status, exit_code = "failed", 128 + signum
        stderr = _append_line(stderr, f"Process killed by signal {signum} ({_signal_name(signum)})")
    else:
        exit_code = result.exit_code
        status = "success" if exit_code == 0 else "failed"
    if status == "success" and result.ret is not None:
        return_value, problem = _decode_return(result)
        if problem:
            status = "failed"
            stderr = _append_line(stderr, problem)
    usage = result.rusage
    return RunOutcome(
        status=status,
        exit_code=exit_code,
        stdout=result.stdout.text(),
        stderr=stderr,
        return_value=return_value,
        duration_ms=round(result.duration_s * 1000.0, 3),
        cpu_time_ms=round((usage.ru_utime + usage.ru_stime) * 1000.0, 3) if usage else 0.0,
        peak_memory_mb=round(usage.ru_maxrss / 1024.0, 3) if usage else 0.0,  # ru_maxrss is KiB on Linux
        stdout_truncated=result.stdout.truncated,
        stderr_truncated=result.stderr.truncated,
    )


def _append_line(text: str, line: str) -> str:
    """Our own notes go on a line of their own after whatever the child wrote."""
    return text + ("\n" if text and not text.endswith("\n") else "") + line


def _decode_return(result: ProcessResult) -> tuple[Any, str]:
    assert result.ret is not None
    if result.ret.truncated:
        return None, f"return value too large (over {RETURN_LIMIT} bytes)"
    data = result.ret.data()
    if not data:
        return None, ""  # plain script, or the handler exited without returning
    try:
        return json.loads(data), ""
    except ValueError as exc:
        return None, f"return value is not valid JSON: {exc}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "unknown"

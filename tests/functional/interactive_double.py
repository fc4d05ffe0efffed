"""The executor's side of code contexts and background processes (issue #12) for functional tests: what
HttpExecutorClient would return or raise, kept in memory per executor URL. RecordingExecutor
(conftest.py) inherits it; every call is recorded in `interactive_calls` as (method, url, args, key)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sandboxcp.domain.errors import ContextNotFound, ProcessNotFound, SessionLimitReached, StateConflict
from sandboxcp.domain.ports import ExecutorContext, ExecutorProcess


class InteractiveExecutorDouble:
    MAX_CONTEXTS, MAX_PROCESSES = 8, 16

    @property
    def _state(self) -> dict[str, Any]:
        if "_interactive" not in self.__dict__:
            self.__dict__["_interactive"] = {"contexts": {}, "processes": {}, "stdin": {}, "calls": []}
        return self.__dict__["_interactive"]

    @property
    def interactive_calls(self) -> list[tuple[str, str, tuple[Any, ...], str]]:
        return self._state["calls"]

    @property
    def contexts(self) -> dict[tuple[str, str], ExecutorContext]:
        return self._state["contexts"]

    @property
    def processes(self) -> dict[tuple[str, str], ExecutorProcess]:
        return self._state["processes"]

    def _call(self, name: str, url: str, key: str, *args: Any) -> None:
        self.interactive_calls.append((name, url, args, key))

    # -- contexts
    def create_context(
        self, executor_url: str, context_id: str, language: str, cwd: str | None, *, executor_key: str
    ) -> ExecutorContext:
        self._call("create_context", executor_url, executor_key, context_id, language, cwd)
        if sum(1 for url, _ in self.contexts if url == executor_url) >= self.MAX_CONTEXTS:
            raise SessionLimitReached("The sandbox has too many contexts", retry_after=5)
        self.contexts[executor_url, context_id] = ExecutorContext(context_id=context_id, status="ready")
        return self.contexts[executor_url, context_id]

    def _context(self, executor_url: str, context_id: str) -> ExecutorContext:
        if (executor_url, context_id) not in self.contexts:
            raise ContextNotFound(f"The sandbox has no context '{context_id}'")
        return self.contexts[executor_url, context_id]

    def get_context(self, executor_url: str, context_id: str, *, executor_key: str) -> ExecutorContext:
        self._call("get_context", executor_url, executor_key, context_id)
        return self._context(executor_url, context_id)

    def delete_context(self, executor_url: str, context_id: str, *, executor_key: str) -> None:
        self._call("delete_context", executor_url, executor_key, context_id)
        self._context(executor_url, context_id)
        del self.contexts[executor_url, context_id]

    def restart_context(self, executor_url: str, context_id: str, *, executor_key: str) -> ExecutorContext:
        self._call("restart_context", executor_url, executor_key, context_id)
        old = self._context(executor_url, context_id)
        new = old.model_copy(update={"status": "ready", "restarts": old.restarts + 1})
        self.contexts[executor_url, context_id] = new
        return new

    # -- processes
    def start_process(
        self,
        executor_url: str,
        process_id: str,
        cmd: str,
        cwd: str | None,
        env: Mapping[str, str],
        *,
        executor_key: str,
    ) -> ExecutorProcess:
        self._call("start_process", executor_url, executor_key, process_id, cmd, cwd, dict(env))
        running = [
            p for (url, _), p in self.processes.items() if url == executor_url and p.status == "running"
        ]
        if len(running) >= self.MAX_PROCESSES:
            raise SessionLimitReached("The sandbox has too many processes", retry_after=5)
        process = ExecutorProcess(
            process_id=process_id,
            status="running",
            pid=1000 + len(self.processes),
            started_at=datetime.now(UTC),
        )
        self.processes[executor_url, process_id] = process
        return process

    def exit_process(
        self, executor_url: str, process_id: str, exit_code: int | None, signal: int | None = None
    ) -> None:
        """Test helper: the process ends in the sandbox (its exit not reported to the control plane yet)."""
        self.processes[executor_url, process_id] = self.processes[executor_url, process_id].model_copy(
            update={
                "status": "exited",
                "exit_code": exit_code,
                "signal": signal,
                "ended_at": datetime.now(UTC),
            }
        )

    def _process(self, executor_url: str, process_id: str) -> ExecutorProcess:
        if (executor_url, process_id) not in self.processes:
            raise ProcessNotFound(f"The sandbox has no process '{process_id}'")
        return self.processes[executor_url, process_id]

    def get_process(self, executor_url: str, process_id: str, *, executor_key: str) -> ExecutorProcess:
        self._call("get_process", executor_url, executor_key, process_id)
        return self._process(executor_url, process_id)

    def list_processes(self, executor_url: str, *, executor_key: str) -> list[ExecutorProcess]:
        self._call("list_processes", executor_url, executor_key)
        return [p for (url, _), p in self.processes.items() if url == executor_url]

    def write_stdin(
        self, executor_url: str, process_id: str, data: str, eof: bool, *, executor_key: str
    ) -> int:
        self._call("write_stdin", executor_url, executor_key, process_id, data, eof)
        process = self._process(executor_url, process_id)
        if process.status == "exited" or self._state["stdin"].get(process_id) == "closed":
            raise StateConflict(f"The executor refused this for process '{process_id}'")
        if eof:
            self._state["stdin"][process_id] = "closed"
        return len(data.encode())

    def signal_process(self, executor_url: str, process_id: str, signal: str, *, executor_key: str) -> None:
        self._call("signal_process", executor_url, executor_key, process_id, signal)
        if self._process(executor_url, process_id).status == "exited":
            raise StateConflict(f"The executor refused this for process '{process_id}'")

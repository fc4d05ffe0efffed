"""The execution queue: a bounded FIFO drained by one worker thread, so executions run one at a
time in submission order, each with its status, heartbeats and result callbacks.

Results are delivered by the worker itself before it takes the next execution: ordering of
results then follows submission order, and a control plane that is down for long fills the queue,
which pushes back with 503 ``Executor.QueueFull`` instead of piling up results in memory.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import OrderedDict

from sandbox_executor.callbacks import CallbackClient, Outcome
from sandbox_executor.clock import utc_now_iso
from sandbox_executor.logs import log
from sandbox_executor.runner import Runner, RunOutcome, shrink_report
from sandbox_executor.validation import ExecutionRequest

QUEUE_BOUND = 64
# Finished execution ids remembered so a re-sent /execute is not run twice. Bounded, oldest first out.
DONE_MEMORY = 4096
STATUS_JOIN_S = 15.0  # the running-status post gives up after ~10 s; never wait forever for it

QUEUED, RUNNING, DONE = "queued", "running", "done"


class QueueFull(Exception):
    pass


class _Heartbeat:
    """Posts a heartbeat every ``interval`` s while an execution runs; best effort, own thread."""

    def __init__(self, callbacks: CallbackClient, execution_id: str, interval: float) -> None:
        self._callbacks = callbacks
        self._execution_id = execution_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{execution_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        # A hung control plane must not delay the next beat much: the timeout stays short.
        timeout = min(2.0, max(0.5, self._interval))
        while not self._stop.wait(self._interval):
            self._callbacks.heartbeat(self._execution_id, timeout)


class ExecutionQueue:
    def __init__(
        self,
        runner: Runner,
        callbacks: CallbackClient,
        *,
        heartbeat_s: float,
        retry_base_s: float,
        stop: threading.Event,
        bound: int = QUEUE_BOUND,
    ) -> None:
        self._runner = runner
        self._callbacks = callbacks
        self._heartbeat_s = heartbeat_s
        self._retry_base_s = retry_base_s
        self._stop = stop
        self._queue: queue.Queue[ExecutionRequest | None] = queue.Queue(maxsize=bound)
        self._lock = threading.Lock()
        self._states: OrderedDict[str, str] = OrderedDict()
        self._running: str | None = None
        self._thread = threading.Thread(target=self._loop, name="execution-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Let the worker finish its current item and exit (used by tests; SIGTERM just exits)."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def submit(self, req: ExecutionRequest) -> bool:
        """Queue ``req``; False if that execution id is already known (queued, running or done).

        Raises QueueFull past the bound.
        """
        with self._lock:  # the duplicate check and the enqueue must be one step
            if req.execution_id in self._states:
                state = self._states[req.execution_id]
                log("execution_duplicate", execution_id=req.execution_id, state=state)
                return False
            try:
                self._queue.put_nowait(req)
            except queue.Full:
                raise QueueFull(f"Executor has {self._queue.qsize()} queued executions") from None
            self._states[req.execution_id] = QUEUED
        log("execution_accepted", execution_id=req.execution_id, language=req.language, timeout_s=req.timeout)
        return True

    def counts(self) -> tuple[int, int]:
        """(running, queued)."""
        with self._lock:
            return (1 if self._running else 0), self._queue.qsize()

    def _set_state(self, execution_id: str, state: str) -> None:
        with self._lock:
            self._states[execution_id] = state
            self._running = execution_id if state == RUNNING else None
            if state == DONE:
                self._states.move_to_end(execution_id)
                done = [eid for eid, st in self._states.items() if st == DONE]
                for eid in done[: max(0, len(done) - DONE_MEMORY)]:
                    del self._states[eid]

    def _loop(self) -> None:
        while True:
            req = self._queue.get()
            if req is None:
                return
            try:
                self._process(req)
            except Exception as exc:  # never let one execution kill the worker
                log("execution_internal_error", execution_id=req.execution_id, error=type(exc).__name__)
                self._set_state(req.execution_id, DONE)

    def _process(self, req: ExecutionRequest) -> None:
        eid = req.execution_id
        self._set_state(eid, RUNNING)
        started_at = utc_now_iso()
        log("execution_started", execution_id=eid, language=req.language)
        # Posted in the background so a slow control plane never delays the user's code; joined
        # before the result so "running" cannot arrive after the final state.
        status = threading.Thread(
            target=self._callbacks.execution_running,
            args=(eid, started_at),
            name=f"status-{eid}",
            daemon=True,
        )
        status.start()
        heartbeat = _Heartbeat(self._callbacks, eid, self._heartbeat_s)
        heartbeat.start()
        try:
            outcome = self._run(req)
        finally:
            heartbeat.stop()
        log(
            "execution_finished",
            execution_id=eid,
            status=outcome.status,
            exit_code=outcome.exit_code,
            duration_ms=outcome.duration_ms,
        )
        status.join(STATUS_JOIN_S)
        if self._stop.is_set():
            # Shutting down: the child was killed by us, not by its code; the control plane learns
            # from container_exited and the missing heartbeats instead of a misleading result.
            log("result_dropped", execution_id=eid, reason="shutdown")
        else:
            self._report(eid, outcome)
        self._set_state(eid, DONE)

    def _report(self, eid: str, outcome: RunOutcome) -> None:
        delivery = self._callbacks.execution_result(eid, outcome.to_report(), self._retry_base_s)
        if delivery.status == 413:
            # The control plane (API Gateway / Lambda payload limits) refused the size: report a
            # smaller result rather than none at all.
            log("result_too_large", execution_id=eid)
            delivery = self._callbacks.execution_result(eid, shrink_report(outcome), self._retry_base_s)
        if delivery.outcome is Outcome.DELIVERED:
            log("result_delivered", execution_id=eid, http_status=delivery.status)
        elif delivery.status == 409:
            log("result_already_stored", execution_id=eid)
        else:
            log(
                "result_undelivered",
                execution_id=eid,
                outcome=delivery.outcome.value,
                http_status=delivery.status,
            )

    def _run(self, req: ExecutionRequest) -> RunOutcome:
        try:
            return self._runner.run(req)
        except Exception as exc:
            log("execution_internal_error", execution_id=req.execution_id, error=type(exc).__name__)
            return RunOutcome(
                status="failed", exit_code=-1, stderr=f"executor internal error: {type(exc).__name__}\n"
            )

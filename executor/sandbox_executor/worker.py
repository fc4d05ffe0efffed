"""The execution queue: a bounded FIFO drained by one worker thread, so executions run one at a
time in submission order, each with its status and result callbacks; every execution held, queued
or running, is kept alive with heartbeats.

Results are delivered by the worker itself before it takes the next execution: ordering of
results then follows submission order, and a control plane that is down for long fills the queue,
which pushes back with 503 ``Executor.QueueFull`` instead of piling up results in memory.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import OrderedDict, deque

from sandbox_executor.callbacks import CallbackClient, Outcome
from sandbox_executor.clock import utc_now_iso
from sandbox_executor.logs import log
from sandbox_executor.streaming import OutputStream

TYPE_CHECKING = False  # not typing's: an idle agent does not import typing (docs/capacity.md)
if TYPE_CHECKING:  # the runner is imported with the first execution (app.Machinery)
    from typing import Protocol

    from sandbox_executor.process import OnOutput
    from sandbox_executor.runner import RunOutcome
    from sandbox_executor.validation import ExecutionRequest

    class RunsCode(Protocol):
        """runner.Runner, or what builds one on first use (app.Machinery)."""

        def run(self, req: ExecutionRequest, on_output: OnOutput | None = None) -> RunOutcome: ...


QUEUE_BOUND = 64
# Finished execution ids remembered so a re-sent /execute is not run twice. Bounded, oldest first out.
DONE_MEMORY = 4096
STATUS_JOIN_S = 15.0  # the running-status post gives up after ~10 s; never wait forever for it
HEARTBEAT_SENDERS = 4  # heartbeat posts in flight at most
HEARTBEAT_IDLE_POLL_S = 0.5
# The first beat of an execution comes this long after acceptance (or one interval, if shorter): the
# control plane gives an execution 15 s from its creation before it wants one, and most runs are over
# sooner, so they cost no heartbeat at all.
FIRST_BEAT_S = 1.0
# "running" is posted only for runs still going after this long: a run that ends sooner reports its
# result alone (pending -> completed), one callback instead of two on the path of every short run.
RUNNING_STATUS_DELAY_S = 0.05

QUEUED, RUNNING, DONE = "queued", "running", "done"
# How long the worker waits for the submit's answer to be written once it handed the result over: past
# it, the result goes by callback as usual.
HANDOFF_SETTLE_S = 5.0


class Handoff:
    """A result the waiting `/execute` request may carry in its answer instead of the result callback
    (`wait_ms`, execute-sync): one step fewer on the path of a short run. Exactly one of the two delivers
    it: the request takes the report only while it still waits (`abandon` otherwise), and says whether
    its answer was written (`settle`); the worker posts the callback unless it was."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._settled = threading.Event()
        self._report: dict[str, object] | None = None
        self._abandoned = False
        self._delivered = False

    def wait(self, timeout_s: float) -> dict[str, object] | None:
        """The report if it came within `timeout_s` (the caller must then `settle`), else None."""
        self._ready.wait(timeout_s)
        with self._lock:
            if self._report is None:
                self._abandoned = True
            return self._report

    def settle(self, delivered: bool) -> None:
        self._delivered = delivered
        self._settled.set()

    def offer(self, report: dict[str, object]) -> bool:
        """Worker side: True when the waiting request delivered `report` (no callback then)."""
        with self._lock:
            if self._abandoned:
                return False
            self._report = report
            self._ready.set()
        return self._settled.wait(HANDOFF_SETTLE_S) and self._delivered


class QueueFull(Exception):
    pass


class Heartbeats:
    """Heartbeats for every execution the executor holds, queued or running (FR-022).

    The control plane marks an execution ``crashed`` after 15 s without a heartbeat, including one
    still waiting behind a long run, so each held execution gets a beat as soon as it is accepted
    and then every ``interval`` s until its result is delivered (or given up on).

    One scheduler thread hands due beats to ``senders`` sender threads: a hung control plane
    ties up at most that many connections, each with a short timeout, and never the worker or the
    HTTP handlers. An execution whose previous beat is still in flight skips a beat rather than
    piling up requests.
    """

    def __init__(
        self,
        callbacks: CallbackClient,
        interval: float,
        stop: threading.Event,
        senders: int = HEARTBEAT_SENDERS,
    ) -> None:
        self._callbacks = callbacks
        self._interval = interval
        self._stop = stop
        # A hung control plane must not delay the next beat much: the timeout stays short.
        self._timeout = min(2.0, max(0.5, interval))
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}  # held execution id -> monotonic time of its next beat
        self._busy: set[str] = set()  # ids waiting in the outbox or being sent
        self._outbox: deque[str] = deque()
        self._wanted = self._launched = False
        self._threads = [threading.Thread(target=self._schedule, name="heartbeat", daemon=True)]
        self._threads += [
            threading.Thread(target=self._send, name=f"heartbeat-sender-{i}", daemon=True)
            for i in range(senders)
        ]

    def start(self) -> None:
        """Beat from now on. The threads start with the first execution held: an agent that has run
        nothing has none (each thread costs a stack and a malloc arena, docs/capacity.md)."""
        with self._cond:
            self._wanted = True
            if self._due:
                self._launch()

    def _launch(self) -> None:
        if not self._launched:  # under self._cond
            self._launched = True
            for thread in self._threads:
                thread.start()

    def hold(self, execution_id: str) -> None:
        """Beat for ``execution_id`` soon (FIRST_BEAT_S) and every interval from then on."""
        with self._cond:
            self._due[execution_id] = time.monotonic() + min(FIRST_BEAT_S, self._interval)
            if self._wanted:
                self._launch()
            self._cond.notify_all()

    def release(self, execution_id: str) -> None:
        with self._cond:
            self._due.pop(execution_id, None)

    def held(self) -> list[str]:
        with self._cond:
            return list(self._due)

    def _schedule(self) -> None:
        with self._cond:
            while not self._stop.is_set():
                now = time.monotonic()
                for eid, due in self._due.items():
                    if due > now:
                        continue
                    if eid not in self._busy:
                        self._busy.add(eid)
                        self._outbox.append(eid)
                    # Keep the cadence, but never try to catch up on beats missed in a stall.
                    following = due + self._interval
                    self._due[eid] = following if following > now else now + self._interval
                if self._outbox:
                    self._cond.notify_all()
                next_due = min(self._due.values(), default=now + HEARTBEAT_IDLE_POLL_S)
                # Bounded, so that a stop (set from a signal handler, without notify) is seen.
                self._cond.wait(min(max(0.0, next_due - now), HEARTBEAT_IDLE_POLL_S))

    def _send(self) -> None:
        while True:
            with self._cond:
                while not self._outbox:
                    self._cond.wait()
                eid = self._outbox.popleft()
                held = eid in self._due
            try:
                if held and not self._stop.is_set():
                    self._callbacks.heartbeat(eid, self._timeout)
            except Exception as exc:  # a sender thread must survive anything
                log("heartbeat_error", execution_id=eid, error=type(exc).__name__)
            finally:
                with self._cond:
                    self._busy.discard(eid)


class ExecutionQueue:
    def __init__(
        self,
        runner: RunsCode,
        callbacks: CallbackClient,
        *,
        heartbeat_s: float,
        retry_base_s: float,
        stop: threading.Event,
        bound: int = QUEUE_BOUND,
    ) -> None:
        self._runner = runner
        self._callbacks = callbacks
        self._retry_base_s = retry_base_s
        self._stop = stop
        self._queue: queue.Queue[ExecutionRequest | None] = queue.Queue(maxsize=bound)
        self._lock = threading.Lock()
        self._states: OrderedDict[str, str] = OrderedDict()
        self._running: str | None = None
        self._handoffs: dict[str, Handoff] = {}  # executions whose /execute waits for the result
        self._heartbeats = Heartbeats(callbacks, heartbeat_s, stop)
        # Long-lived on purpose: user code is spawned from this thread and dies when it exits.
        self._thread = threading.Thread(target=self._loop, name="execution-worker", daemon=True)

    def start(self) -> None:
        self._heartbeats.start()
        self._thread.start()

    def close(self) -> None:
        """Let the worker finish its current item and exit (used by tests; SIGTERM just exits)."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def submit(self, req: ExecutionRequest, handoff: Handoff | None = None) -> bool:
        """Queue ``req``; False if that execution id is already known (queued, running or done).
        With ``handoff``, its result is offered there first (see Handoff).

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
            if handoff is not None:
                self._handoffs[req.execution_id] = handoff
            self._heartbeats.hold(req.execution_id)
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
                self._heartbeats.release(execution_id)
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
            with self._lock:  # a result dropped at shutdown: a waiting request answers 202 at its deadline
                self._handoffs.pop(req.execution_id, None)

    def _process(self, req: ExecutionRequest) -> None:
        eid = req.execution_id
        self._set_state(eid, RUNNING)
        started_at = utc_now_iso()
        log("execution_started", execution_id=eid, language=req.language)
        # Posted in the background so a slow control plane never delays the user's code; joined
        # before the result so "running" cannot arrive after the final state.
        finished = threading.Event()

        def post_running() -> None:
            if not finished.wait(RUNNING_STATUS_DELAY_S):
                self._callbacks.execution_running(eid, started_at)

        status = threading.Thread(target=post_running, name=f"status-{eid}", daemon=True)
        status.start()
        # Heartbeats go on (since acceptance) until the result is delivered: a control plane that
        # answers 5xx to the result for a while must not take the execution for crashed meanwhile.
        live = OutputStream(
            lambda chunks: self._callbacks.output(f"/executions/{eid}/output", {"chunks": chunks})
        )
        try:
            outcome = self._run(req, live.feed)
        finally:
            finished.set()
            live.close()  # every live chunk is with the control plane before the result
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
            self._report(eid, outcome, started_at)
        self._set_state(eid, DONE)

    def _report(self, eid: str, outcome: RunOutcome, started_at: str) -> None:
        report = {**outcome.to_report(), "started_at": started_at}
        with self._lock:
            handoff = self._handoffs.pop(eid, None)
        if handoff is not None and handoff.offer(report):
            log("result_delivered", execution_id=eid, via="execute_response")
            return
        delivery = self._callbacks.execution_result(eid, report, self._retry_base_s)
        if delivery.status == 413:
            # The control plane (API Gateway / Lambda payload limits) refused the size: report a
            # smaller result rather than none at all.
            log("result_too_large", execution_id=eid)
            from sandbox_executor.runner import shrink_report

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

    def _run(self, req: ExecutionRequest, on_output: OnOutput) -> RunOutcome:
        try:
            return self._runner.run(req, on_output)
        except Exception as exc:
            log("execution_internal_error", execution_id=req.execution_id, error=type(exc).__name__)
            from sandbox_executor.runner import RunOutcome

            return RunOutcome(
                status="failed", exit_code=-1, stderr=f"executor internal error: {type(exc).__name__}\n"
            )

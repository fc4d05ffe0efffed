"""Container usage (seed US5): CPU, memory and disk per container in the containers API, an EMF metric each
(alarms above 80 %), the process runtime's own measurement, and the programs' stdout/stderr in the logs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from sandboxcp.adapters.runtimes.process import ProcessRuntime
from sandboxcp.domain.models import Execution, ExecutionMetrics, ExecutionOutcome
from sandboxcp.domain.states import ExecutionStatus, SessionStatus
from sandboxcp.domain.usage import ContainerUsage
from sandboxcp.observability import REGISTRY
from sandboxcp.services.containers import merge_by_time
from tests.functional.conftest import RecordingRuntime, body, invoke, sample_event, seed_session, with_path

SID = "sess_0000000000000001"


class MeasuringRuntime(RecordingRuntime):
    def __init__(self, usage: dict[str, ContainerUsage]) -> None:
        super().__init__()
        self.measured = usage
        self.asked: list[list[str]] = []

    def usage(self, container_ids: Iterable[str]) -> dict[str, ContainerUsage]:
        ids = list(container_ids)
        self.asked.append(ids)
        return {c: u for c, u in self.measured.items() if c in ids}

    def logs(self, container_id: str, tail: int = 100, since: datetime | None = None) -> list[str]:
        return ["2026-03-01T12:00:00Z sandbox-executor ready", "2026-03-01T12:00:10Z sandbox-executor done"]


def _usage(cpu: float, memory_mb: int) -> ContainerUsage:
    return ContainerUsage.of(
        cpu_cores_used=cpu,
        cpu_limit=0.0,  # unknown to the runtime: the session's limit is used
        memory_bytes=memory_mb * 1024 * 1024,
        memory_limit_bytes=0,
        disk_bytes=100 * 1024 * 1024,
        disk_limit_bytes=1024 * 1024 * 1024,
    )


def test_usage_in_the_containers_api_with_a_metric_each(deps):
    seed_session(deps)  # running, 1 core, 512Mi, 1Gi
    seed_session(deps, "sess_0000000000000002", status=SessionStatus.TERMINATED)
    deps.runtime = MeasuringRuntime({f"proc-{SID}": _usage(0.9, 448)})
    REGISTRY.clear()
    resp = invoke("containers_get", with_path(sample_event("containers_get"), container_id=SID))
    assert resp["statusCode"] == 200, resp["body"]
    usage = body(resp)["usage"]
    assert usage["cpu_percent"] == 90.0 and usage["cpu_cores"] == 0.9
    assert usage["memory_percent"] == 87.5 and usage["memory_limit_bytes"] == 512 * 1024 * 1024
    assert usage["disk_percent"] == 9.8 and usage["disk_bytes"] == 100 * 1024 * 1024
    rendered = REGISTRY.render()
    for metric in ("ContainerCpuPercent", "ContainerMemoryPercent", "ContainerDiskPercent"):
        assert metric.lower() in rendered.lower().replace("_", ""), (metric, rendered)
    # Ended containers are not measured, and show no usage.
    ended = invoke(
        "containers_get", with_path(sample_event("containers_get"), container_id="sess_0000000000000002")
    )
    assert "usage" not in body(ended) and deps.runtime.asked[-1] == [f"proc-{SID}"]
    listed = body(invoke("containers_list", sample_event("containers_list")))["containers"]
    assert [c["usage"]["cpu_percent"] for c in listed if c["session_id"] == SID] == [90.0]


def test_usage_flags_what_is_above_80_percent():
    assert _usage(0.9, 448).with_limits(1.0, 512 * 1024 * 1024, 1 << 30).over() == ["cpu", "memory"]
    assert _usage(0.1, 100).with_limits(1.0, 512 * 1024 * 1024, 1 << 30).over() == []


def test_logs_carry_the_programs_output_marked_by_stream(deps):
    seed_session(deps)
    deps.runtime = MeasuringRuntime({})
    at = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    deps.executions.create(
        Execution(
            execution_id="exec_20260301_00000001",
            session_id=SID,
            tenant_id="tenant-a",
            status=ExecutionStatus.PENDING,
            code="print('hi')",
            language="python",
            timeout=30,
            created_at=at,
        )
    )
    deps.executions.transition("exec_20260301_00000001", ExecutionStatus.RUNNING, now=at)
    outcome = ExecutionOutcome(
        status="success",
        stdout="hello\nworld\n",
        stderr="warn\n",
        exit_code=0,
        execution_time=0.1,
        metrics=ExecutionMetrics(duration_ms=100),
    )
    deps.executions.record_outcome("exec_20260301_00000001", outcome, now=at)
    resp = invoke("containers_logs", with_path(sample_event("containers_logs"), container_id=SID))
    lines = resp["body"].splitlines()
    stamp = "2026-03-01T12:00:05Z"
    assert lines == [
        "2026-03-01T12:00:00Z sandbox-executor ready",
        f"{stamp} [stdout] execution_id=exec_20260301_00000001 hello",
        f"{stamp} [stdout] execution_id=exec_20260301_00000001 world",
        f"{stamp} [stderr] execution_id=exec_20260301_00000001 warn",
        "2026-03-01T12:00:10Z sandbox-executor done",
    ]


def test_merge_keeps_unstamped_lines_with_their_stamped_line():
    runtime = ["2026-03-01T12:00:00Z a", "  traceback line", "2026-03-01T12:00:09Z b"]
    program = ["2026-03-01T12:00:05Z [stdout] execution_id=e x"]
    assert merge_by_time(runtime, program) == [runtime[0], runtime[1], program[0], runtime[2]]
    assert merge_by_time(runtime, []) == runtime


def test_the_process_runtime_measures_cpu_and_memory_of_a_sandbox(tmp_path):
    runtime = ProcessRuntime(str(tmp_path), "")
    busy = "import time\nx = bytearray(64 << 20)\nend = time.time() + 30\nwhile time.time() < end: pass"
    proc = subprocess.Popen([sys.executable, "-c", busy], start_new_session=True)
    runtime._procs[f"proc-{SID}"] = proc  # a stand-in for the bwrap launcher (leads its session)
    try:
        import time

        time.sleep(0.5)  # let it allocate
        usage = runtime.usage([f"proc-{SID}", "proc-sess_0000000000000009"])
        assert list(usage) == [f"proc-{SID}"]  # a sandbox that is not there is left out
        measured = usage[f"proc-{SID}"]
        assert measured.cpu_cores > 0.1  # a busy loop (idle is 0): a share of a core even on a busy machine
        assert measured.memory_bytes > 64 * 1024 * 1024
    finally:
        proc.kill()
        proc.wait()
    assert runtime.usage([f"proc-{SID}"]) == {}

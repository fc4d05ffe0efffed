"""What an executor reports through the internal API: container ready/exited, execution status,
heartbeats, and its workspace-urls asks. Ids, addresses and error texts are bounded."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr, StringConstraints, field_validator

from sandbox_executor.contract import MAX_FEATURE_CHARS, MAX_FEATURES, MAX_PRESIGN_PATHS, path_problem
from sandboxcp.domain.inputs import JsonBody

# What an executor reports (internal API): ids, addresses and error texts, never more than this.
MAX_REPORTED_ID_CHARS = 512
MAX_REPORTED_URL_CHARS = 2048
MAX_REPORTED_ERROR_CHARS = 4096


class ContainerReadyReport(JsonBody):
    container_id: str | None = Field(default=None, max_length=MAX_REPORTED_ID_CHARS)
    pod_name: str | None = Field(default=None, max_length=MAX_REPORTED_ID_CHARS)
    executor_port: StrictInt | None = Field(default=None, ge=1, le=65535)
    executor_url: str | None = Field(default=None, max_length=MAX_REPORTED_URL_CHARS)
    ready_at: datetime | None = None
    # What the executor can do (contract.EXECUTOR_FEATURES); executors before 2026-12-02 send none.
    features: list[Annotated[StrictStr, StringConstraints(max_length=MAX_FEATURE_CHARS)]] = Field(
        default_factory=list, max_length=MAX_FEATURES
    )


class ContainerExitedReport(JsonBody):
    exit_code: StrictInt
    exit_reason: Literal["normal", "sigterm", "sigkill", "oom_killed", "error"] | None = None
    exited_at: datetime


class ExecutionStatusReport(JsonBody):
    status: Literal["running", "timeout", "crashed"]
    started_at: datetime | None = None
    crashed_at: datetime | None = None
    timeout_at: datetime | None = None
    error: str | None = Field(default=None, max_length=MAX_REPORTED_ERROR_CHARS)


class HeartbeatReport(JsonBody):
    timestamp: datetime
    progress: dict[str, Any] | None = None


class WorkspaceUrlsRequest(JsonBody):
    """What an executor asks of internal workspace-urls (docs/workspace.md). Nothing (executors before
    2026-12-02): the listing with a presigned GET per file. `urls: false`: the listing alone. `paths`: a
    presigned GET for each of them (the files the executor lacks), at most MAX_PRESIGN_PATHS."""

    urls: StrictBool = True
    paths: list[StrictStr] | None = Field(default=None, max_length=MAX_PRESIGN_PATHS)

    @field_validator("paths")
    @classmethod
    def _plain_paths(cls, paths: list[str] | None) -> list[str] | None:
        for path in paths or ():
            if problem := path_problem(path):
                raise ValueError(f"'{path[:64]}' is not a workspace path: {problem}")
        return paths

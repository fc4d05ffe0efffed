"""FR-050: the executor reports an execution's files on their own
(`POST /internal/executions/{id}/artifacts`), e.g. after uploading large ones to the workspace
asynchronously, before or after the execution's result.

Reported artifacts are kept on the execution, merged by path (a later report of a path replaces the earlier
one), and shown with the result: the result's own artifacts plus the reported ones, a reported path
replacing the result's entry. Paths are workspace paths (normalized, inside the session's workspace);
any `download_url` the sandbox sends is ignored: clients get URLs the control plane presigns itself."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, StrictInt

from sandboxcp.domain.inputs import JsonBody
from sandboxcp.domain.workspace import MAX_FILE_BYTES, Artifact, normalize_path
from sandboxcp.services.callbacks import _own_execution
from sandboxcp.services.deps import Dependencies

MAX_ARTIFACTS = 200  # per report and per execution (they are kept on the execution's item)
MAX_MIME_CHARS = 255
CHECKSUM_PATTERN = r"^[0-9A-Za-z+/=:_-]{1,128}$"  # hex or base64 SHA-256, optionally "sha256:"-prefixed


class ArtifactMetadata(JsonBody):
    """internal-api.yaml ArtifactMetadata. Unknown fields are ignored (executors deploy separately)."""

    path: str = Field(min_length=1, max_length=4096, description="Relative to the workspace")
    size: StrictInt = Field(ge=0, le=MAX_FILE_BYTES)
    mime_type: str = Field(min_length=1, max_length=MAX_MIME_CHARS)
    type: Literal["artifact", "log", "output"] = "artifact"
    created_at: datetime | None = None
    checksum: str | None = Field(default=None, pattern=CHECKSUM_PATTERN)
    download_url: str | None = Field(
        default=None, max_length=4096, description="Ignored: the control plane presigns its own URLs"
    )


class ArtifactsReport(JsonBody):
    artifacts: list[ArtifactMetadata] = Field(max_length=MAX_ARTIFACTS)


def record_artifacts(
    deps: Dependencies, caller_session: str, execution_id: str, report: ArtifactsReport
) -> list[Artifact]:
    """Keep the reported artifacts on the execution; returns everything reported for it so far."""
    _own_execution(deps, caller_session, execution_id)
    artifacts: dict[str, Artifact] = {}
    for item in report.artifacts:
        path = normalize_path(item.path)
        artifacts[path] = Artifact(
            path=path, size=item.size, mime_type=item.mime_type, type=item.type, checksum=item.checksum
        )
    return deps.executions.add_artifacts(execution_id, list(artifacts.values()), max_count=MAX_ARTIFACTS)

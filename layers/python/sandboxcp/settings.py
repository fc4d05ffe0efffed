"""Environment variables as one typed model (read once per process)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field

RuntimeName = Literal["process", "docker", "ecs", "eks"]


class Settings(BaseModel):
    sessions_table: str = Field(alias="SESSIONS_TABLE")
    executions_table: str = Field(alias="EXECUTIONS_TABLE")
    templates_table: str = Field(alias="TEMPLATES_TABLE")
    api_keys_table: str = Field(alias="API_KEYS_TABLE")
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE")
    workspace_bucket: str = Field(alias="WORKSPACE_BUCKET")
    launch_state_machine_arn: str = Field(default="", alias="LAUNCH_STATE_MACHINE_ARN")
    runtime: RuntimeName = Field(default="process", alias="SANDBOX_RUNTIME")
    # Base URL the sandbox's executor calls back (paths /internal/... are appended).
    callback_base_url: str = Field(default="", alias="CALLBACK_BASE_URL")
    # Process runtime only: where per-session sockets, workspaces and logs live.
    sandbox_state_dir: str = Field(default="/tmp/sandboxcp", alias="SANDBOX_STATE_DIR")
    session_creating_timeout_s: int = Field(default=60, alias="SESSION_CREATING_TIMEOUT_S")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))

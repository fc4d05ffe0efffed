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
    runtime_nodes_table: str = Field(default="runtime_nodes", alias="RUNTIME_NODES_TABLE")
    warm_pool_table: str = Field(default="warm_pool", alias="WARM_POOL_TABLE")
    # Pre-started sandboxes per template, e.g. "python-basic=3,nodejs-basic=1" (empty: no warm pool).
    warm_pool: str = Field(default="", alias="SANDBOX_WARM_POOL")
    workspace_bucket: str = Field(alias="WORKSPACE_BUCKET")
    launch_state_machine_arn: str = Field(default="", alias="LAUNCH_STATE_MACHINE_ARN")
    runtime: RuntimeName = Field(default="process", alias="SANDBOX_RUNTIME")
    # Base URL the sandbox's executor calls back (paths /internal/... are appended).
    callback_base_url: str = Field(default="", alias="CALLBACK_BASE_URL")
    # Process runtime only: where per-session sockets, workspaces and logs live.
    sandbox_state_dir: str = Field(default="/tmp/sandboxcp", alias="SANDBOX_STATE_DIR")
    # Local mode only: sandboxes have no network, so presigned S3 requests go through this unix socket
    # (the path inside the sandbox), which forwards them to the S3 endpoint and nowhere else.
    sandbox_s3_via: str = Field(default="", alias="SANDBOX_S3_VIA")
    session_creating_timeout_s: int = Field(default=60, alias="SESSION_CREATING_TIMEOUT_S")
    # docker runtime: the engine of the default node (more nodes live in the runtime nodes table);
    # remote engines use TCP+TLS with the client certificate from DOCKER_TLS_SECRET_ARN.
    docker_host: str = Field(default="unix:///var/run/docker.sock", alias="DOCKER_HOST")
    docker_tls_secret_arn: str = Field(default="", alias="DOCKER_TLS_SECRET_ARN")
    # ecs runtime
    ecs_cluster: str = Field(default="", alias="ECS_CLUSTER")
    ecs_subnets: str = Field(default="", alias="ECS_SUBNETS")  # comma-separated
    ecs_security_groups: str = Field(default="", alias="ECS_SECURITY_GROUPS")  # comma-separated
    ecs_task_definition_prefix: str = Field(default="sandboxcp-", alias="ECS_TASK_DEFINITION_PREFIX")
    ecs_log_group: str = Field(default="", alias="ECS_LOG_GROUP")
    # eks runtime
    eks_cluster_name: str = Field(default="", alias="EKS_CLUSTER_NAME")
    eks_endpoint: str = Field(default="", alias="EKS_ENDPOINT")
    eks_ca_data: str = Field(default="", alias="EKS_CA_DATA")  # base64 PEM, as in kubeconfig
    eks_namespace: str = Field(default="sandboxes", alias="EKS_NAMESPACE")
    aws_region: str = Field(default="us-east-1", alias="AWS_REGION")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))

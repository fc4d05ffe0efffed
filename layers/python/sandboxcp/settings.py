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
    # Code contexts and background processes (issue #12).
    contexts_table: str = Field(default="contexts", alias="CONTEXTS_TABLE")
    processes_table: str = Field(default="processes", alias="PROCESSES_TABLE")
    # Live output (docs/streaming.md): chunks expire (DynamoDB TTL) this long after they are stored.
    output_chunks_table: str = Field(default="output_chunks", alias="OUTPUT_CHUNKS_TABLE")
    output_ttl_s: int = Field(default=86400, ge=60, alias="OUTPUT_TTL_S")
    # The WebSocket push channel (infra/sandboxcp_infra/streaming.py): its management endpoint
    # (https://{api}.execute-api.{region}.amazonaws.com/{stage}) and subscribers table; empty: no push.
    output_push_endpoint: str = Field(default="", alias="OUTPUT_PUSH_ENDPOINT")
    output_subscribers_table: str = Field(default="", alias="OUTPUT_SUBSCRIBERS_TABLE")
    # Warm sandboxes per template: "python-basic=10" (floor 10, ceiling 20) or "python-basic=2:8" (floor 2,
    # ceiling 8; the refill follows demand in between); 0 disables a template's pool. Empty: the seed's
    # defaults (python-datascience=20,python-basic=10,nodejs-basic=5); "none": no pool (warm_pool.py).
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
    # or Docker's own layout (ca.pem, cert.pem, key.pem) in a directory, when no secret is named
    docker_cert_path: str = Field(default="", alias="DOCKER_CERT_PATH")
    # The default node's networks and the address its published executor ports answer on (a node of the
    # nodes table carries these as labels: sandbox_network, sandbox_open_network, publish_host); empty:
    # the node's defaults (docs/placement.md).
    docker_sandbox_network: str = Field(default="", alias="DOCKER_SANDBOX_NETWORK")
    docker_open_network: str = Field(default="", alias="DOCKER_OPEN_NETWORK")
    docker_publish_host: str = Field(default="", alias="DOCKER_PUBLISH_HOST")
    # ecs runtime
    ecs_cluster: str = Field(default="", alias="ECS_CLUSTER")
    ecs_subnets: str = Field(default="", alias="ECS_SUBNETS")  # comma-separated
    ecs_security_groups: str = Field(default="", alias="ECS_SECURITY_GROUPS")  # comma-separated
    ecs_task_definition_prefix: str = Field(default="sandboxcp-", alias="ECS_TASK_DEFINITION_PREFIX")
    ecs_log_group: str = Field(default="", alias="ECS_LOG_GROUP")
    # Security groups of templates that allow network (egress beyond the internal API and S3); empty:
    # such templates cannot launch on ECS (refused, never silently without network).
    ecs_open_security_groups: str = Field(default="", alias="ECS_OPEN_SECURITY_GROUPS")  # comma-separated
    # The execution role of task definitions the ecs runtime registers for templates created through the
    # API (image pull, awslogs); the deployment's own default-template task definitions carry theirs.
    ecs_execution_role_arn: str = Field(default="", alias="ECS_EXECUTION_ROLE_ARN")
    # eks runtime
    eks_cluster_name: str = Field(default="", alias="EKS_CLUSTER_NAME")
    eks_endpoint: str = Field(default="", alias="EKS_ENDPOINT")
    eks_ca_data: str = Field(default="", alias="EKS_CA_DATA")  # base64 PEM, as in kubeconfig
    eks_namespace: str = Field(default="sandboxes", alias="EKS_NAMESPACE")
    # The S3 endpoint's addresses a sandbox without network may reach (its workspace sync), comma-separated
    # CIDRs: in AWS the entries of the region's S3 prefix list (docs/deploy.md, "eks").
    eks_s3_cidrs: str = Field(default="", alias="EKS_S3_CIDRS")
    aws_region: str = Field(default="us-east-1", alias="AWS_REGION")
    # Per-tenant quotas (docs/api.md "Quotas"): a tenant starts with these until an admin sets its own.
    tenants_table: str = Field(default="tenants", alias="TENANTS_TABLE")
    quota_max_sessions: int = Field(default=100, ge=0, alias="QUOTA_MAX_SESSIONS")
    quota_max_inflight_executions: int = Field(default=100, ge=0, alias="QUOTA_MAX_INFLIGHT_EXECUTIONS")
    quota_max_cpu: float = Field(default=100.0, ge=0, alias="QUOTA_MAX_CPU")  # cores
    quota_max_memory_mb: int = Field(default=200 * 1024, ge=0, alias="QUOTA_MAX_MEMORY_MB")
    quota_max_requests_per_second: int = Field(default=100, ge=1, alias="QUOTA_MAX_REQUESTS_PER_SECOND")
    # Retention (DynamoDB TTL `expires_at`): ended sessions and finished executions, in days.
    session_retention_days: float = Field(default=7, gt=0, alias="SESSION_RETENTION_DAYS")
    execution_retention_days: float = Field(default=30, gt=0, alias="EXECUTION_RETENTION_DAYS")
    # Signs list `next_token`s (services/paging.py); empty: a key derived from the table names.
    page_token_key: str = Field(default="", alias="PAGE_TOKEN_KEY", repr=False)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))

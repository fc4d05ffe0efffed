"""DynamoDB tables as pynamodb models: the single description of keys and indexes. The CDK data
construct derives its tables from these classes, and local mode creates them from the same classes.

Every list and every reaper reads an index (no Scan): per-tenant lists by creation time, per-tenant lists
per status, and sparse `active` indexes that hold only sessions still creating or running, so their cost
grows with active work, not with history."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from sandboxcp.settings import Settings


class _TenantCreatedIndex(GlobalSecondaryIndex["SessionRecord"]):
    class Meta:
        index_name = "tenant_created"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class _TenantStatusIndex(GlobalSecondaryIndex["SessionRecord"]):
    class Meta:
        index_name = "tenant_status"
        projection = AllProjection()

    tenant_status = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class _ActiveSessionsIndex(GlobalSecondaryIndex["SessionRecord"]):
    """Sparse: only items whose `active_status` is set (creating/running) are in it."""

    class Meta:
        index_name = "active"
        projection = AllProjection()

    active_status = UnicodeAttribute(hash_key=True)
    last_activity_at = UTCDateTimeAttribute(range_key=True)


class _StatusCreatedIndex(GlobalSecondaryIndex["SessionRecord"]):
    """All tenants' sessions by status: the operators' container listing."""

    class Meta:
        index_name = "status_created"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class _PurgeDueIndex(GlobalSecondaryIndex["SessionRecord"]):
    """Sparse: ended sessions whose workspace still awaits deletion, by when it is due."""

    class Meta:
        index_name = "purge_due"
        projection = KeysOnlyProjection()

    purge_pending = UnicodeAttribute(hash_key=True)
    purge_after = UTCDateTimeAttribute(range_key=True)


class SessionRecord(Model):
    class Meta:
        table_name = "sessions"
        billing_mode = "PAY_PER_REQUEST"

    session_id = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    template_id = UnicodeAttribute()
    status = UnicodeAttribute()
    tenant_status = UnicodeAttribute()
    active_status = UnicodeAttribute(null=True)
    runtime_type = UnicodeAttribute()
    runtime_node = UnicodeAttribute(null=True)
    container_id = UnicodeAttribute(null=True)
    executor_url = UnicodeAttribute(null=True)
    workspace_path = UnicodeAttribute()
    resources = JSONAttribute()
    env_vars = JSONAttribute(null=True)
    timeout = NumberAttribute()
    callback_token_hash = UnicodeAttribute(null=True)
    task_token = UnicodeAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    started_at = UTCDateTimeAttribute(null=True)
    terminated_at = UTCDateTimeAttribute(null=True)
    last_activity_at = UTCDateTimeAttribute()
    purge_pending = UnicodeAttribute(null=True)
    purge_after = UTCDateTimeAttribute(null=True)
    quota_counted = BooleanAttribute(null=True)  # holds a share of its tenant's quota while live
    expires_at = NumberAttribute(null=True)  # DynamoDB TTL (epoch seconds): set when the session ends
    # Executions pending or running: taken in an execution's create transaction, given back in the one
    # that ends it (the per-session limit without a Query per submit).
    executions_inflight = NumberAttribute(null=True)
    workspace_rev = NumberAttribute(null=True)  # the API's writes to the workspace (Session.workspace_rev)
    workspace_open_until = UTCDateTimeAttribute(null=True)  # presigned uploads may still land until then
    executor_features = JSONAttribute(null=True)  # Session.executor_features

    by_tenant = _TenantCreatedIndex()
    by_tenant_status = _TenantStatusIndex()
    active = _ActiveSessionsIndex()
    by_status = _StatusCreatedIndex()
    purge_due = _PurgeDueIndex()


class _SessionExecutionsIndex(GlobalSecondaryIndex["ExecutionRecord"]):
    class Meta:
        index_name = "session_created"
        projection = AllProjection()

    session_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class _SessionStatusIndex(GlobalSecondaryIndex["ExecutionRecord"]):
    class Meta:
        index_name = "session_status"
        projection = AllProjection()

    session_status = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class _InflightIndex(GlobalSecondaryIndex["ExecutionRecord"]):
    """Sparse: only pending and running executions carry `inflight`, so the reaper reads active work only."""

    class Meta:
        index_name = "inflight"
        projection = AllProjection()

    inflight = UnicodeAttribute(hash_key=True)
    last_heartbeat_at = UTCDateTimeAttribute(range_key=True)


class ExecutionRecord(Model):
    class Meta:
        table_name = "executions"
        billing_mode = "PAY_PER_REQUEST"

    execution_id = UnicodeAttribute(hash_key=True)
    session_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    status = UnicodeAttribute()
    session_status = UnicodeAttribute()
    code = UnicodeAttribute()
    language = UnicodeAttribute()
    timeout = NumberAttribute()
    event = JSONAttribute(null=True)
    outcome = JSONAttribute(null=True)
    outcome_key = UnicodeAttribute(null=True)  # S3 key of an outcome too large for the item
    inflight = UnicodeAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    retry_count = NumberAttribute(default=0)
    parent_execution_id = UnicodeAttribute(null=True)
    context_id = UnicodeAttribute(null=True)  # a code context's cell (issue #12)
    created_at = UTCDateTimeAttribute()
    started_at = UTCDateTimeAttribute(null=True)
    completed_at = UTCDateTimeAttribute(null=True)
    last_heartbeat_at = UTCDateTimeAttribute(null=True)
    retry_after = UTCDateTimeAttribute(null=True)  # a retry waiting for its backoff (the reaper sends it)
    artifacts = JSONAttribute(null=True)  # reported on their own (FR-050), merged into the result on read
    quota_counted = BooleanAttribute(null=True)  # holds a share of its tenant's quota while in flight
    session_slot = BooleanAttribute(null=True)  # holds one of its session's executions_inflight
    expires_at = NumberAttribute(null=True)  # DynamoDB TTL (epoch seconds): set when the execution ends

    by_session = _SessionExecutionsIndex()
    by_session_status = _SessionStatusIndex()
    inflight_index = _InflightIndex()


class _AllTemplatesIndex(GlobalSecondaryIndex["TemplateRecord"]):
    """Templates are few; one partition keyed by a constant lets the list be a Query, not a Scan."""

    class Meta:
        index_name = "all_templates"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    template_id = UnicodeAttribute(range_key=True)


class TemplateRecord(Model):
    class Meta:
        table_name = "templates"
        billing_mode = "PAY_PER_REQUEST"

    template_id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute(default="template")
    body = JSONAttribute()
    deprecated = BooleanAttribute(default=False)

    all_templates = _AllTemplatesIndex()


class _TenantKeysIndex(GlobalSecondaryIndex["ApiKeyRecord"]):
    class Meta:
        index_name = "tenant_keys"
        projection = KeysOnlyProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class ApiKeyRecord(Model):
    """API keys, stored only as SHA-256 hashes of the bearer secret."""

    class Meta:
        table_name = "api_keys"
        billing_mode = "PAY_PER_REQUEST"

    key_hash = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    is_admin = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute()

    by_tenant = _TenantKeysIndex()


class _NodesByStatusIndex(GlobalSecondaryIndex["RuntimeNodeRecord"]):
    class Meta:
        index_name = "runtime_status"
        projection = AllProjection()

    runtime_status = UnicodeAttribute(hash_key=True)  # "<runtime>#<healthy|unhealthy|draining>"
    node_id = UnicodeAttribute(range_key=True)


class RuntimeNodeRecord(Model):
    """A host that runs sandboxes (a Docker engine; ECS and EKS register one logical node each)."""

    class Meta:
        table_name = "runtime_nodes"
        billing_mode = "PAY_PER_REQUEST"

    node_id = UnicodeAttribute(hash_key=True)
    runtime_type = UnicodeAttribute()
    endpoint = UnicodeAttribute()  # unix:///var/run/docker.sock, tcp://host:2376, ...
    status = UnicodeAttribute(default="healthy")
    runtime_status = UnicodeAttribute()
    capacity = NumberAttribute(default=50)  # sandboxes this node may hold
    cpu_capacity = NumberAttribute(null=True)  # cores placement may hand out (null: not limited)
    memory_capacity_mb = NumberAttribute(null=True)
    labels = JSONAttribute(null=True)
    cached_images = JSONAttribute(null=True)
    consecutive_failures = NumberAttribute(default=0)
    last_probe_at = UTCDateTimeAttribute(null=True)
    # Placement's view of the node's load (services/nodes.py): recounted from live sessions by the probe
    # job, and each placement adds its session at once.
    load_sandboxes = NumberAttribute(null=True)
    load_cpu = NumberAttribute(null=True)
    load_memory_mb = NumberAttribute(null=True)
    load_counted_at = UTCDateTimeAttribute(null=True)

    by_status = _NodesByStatusIndex()


class _AvailableIndex(GlobalSecondaryIndex["WarmSandboxRecord"]):
    """Sparse: only unclaimed warm sandboxes carry `available_template`, oldest first."""

    class Meta:
        index_name = "available"
        projection = AllProjection()

    available_template = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class WarmSandboxRecord(Model):
    """A pre-started sandbox waiting for a session (the warm pool)."""

    class Meta:
        table_name = "warm_pool"
        billing_mode = "PAY_PER_REQUEST"

    pool_id = UnicodeAttribute(hash_key=True)
    template_id = UnicodeAttribute()
    status = UnicodeAttribute()  # available | claimed
    available_template = UnicodeAttribute(null=True)
    container_id = UnicodeAttribute()
    executor_url = UnicodeAttribute(null=True)
    node = UnicodeAttribute()
    session_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()

    available = _AvailableIndex()


class TenantRecord(Model):
    """A tenant's quotas and what it may still use (sandboxcp.domain.quotas). `max_*` unset: the
    deployment's defaults, written on first use. `free_*` = limit - usage, taken and given back in the same
    transaction as the session's or execution's state change; `rps_*` is the current one-second window."""

    class Meta:
        table_name = "tenants"
        billing_mode = "PAY_PER_REQUEST"

    tenant_id = UnicodeAttribute(hash_key=True)
    max_sessions = NumberAttribute(null=True)
    max_inflight = NumberAttribute(null=True)
    max_cpu_m = NumberAttribute(null=True)
    max_memory_mb = NumberAttribute(null=True)
    max_rps = NumberAttribute(null=True)
    free_sessions = NumberAttribute(null=True)
    free_inflight = NumberAttribute(null=True)
    free_cpu_m = NumberAttribute(null=True)
    free_memory_mb = NumberAttribute(null=True)
    rps_window = NumberAttribute(null=True)
    rps_free = NumberAttribute(null=True)  # max_rps minus the tokens taken in rps_window
    custom = BooleanAttribute(null=True)  # an admin set the limits


class OutputChunkRecord(Model):
    """Live output (services/output.py): one item per chunk, keyed by the stream it belongs to (an
    execution id, or a background process id) and its sequence number (1, 2, ...). The item at seq 0
    holds the stream's accounting (bytes stored per stdout/stderr, the seq of each truncation marker,
    a version for compare-and-set). Every item expires through DynamoDB TTL on `expires_at`."""

    class Meta:
        table_name = "output_chunks"
        billing_mode = "PAY_PER_REQUEST"

    stream_id = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    stream = UnicodeAttribute(null=True)  # stdout | stderr (chunks)
    data = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute(null=True)
    truncated = BooleanAttribute(null=True)
    expires_at = TTLAttribute(null=True)
    # seq 0 only
    version = NumberAttribute(null=True)
    bytes_stdout = NumberAttribute(null=True)
    bytes_stderr = NumberAttribute(null=True)
    marker_stdout = NumberAttribute(null=True)
    marker_stderr = NumberAttribute(null=True)


class _SubscriberConnectionIndex(GlobalSecondaryIndex["OutputSubscriberRecord"]):
    class Meta:
        index_name = "connection"
        projection = KeysOnlyProjection()

    connection_id = UnicodeAttribute(hash_key=True)
    stream_id = UnicodeAttribute(range_key=True)


class OutputSubscriberRecord(Model):
    """WebSocket connections subscribed to a live-output stream (the AWS push channel, docs/streaming.md).
    Not in TABLES: infra/sandboxcp_infra/streaming.py creates it with the WebSocket API; local mode pushes
    through Server-Sent Events instead."""

    class Meta:
        table_name = "output_subscribers"
        billing_mode = "PAY_PER_REQUEST"

    stream_id = UnicodeAttribute(hash_key=True)
    connection_id = UnicodeAttribute(range_key=True)
    tenant_id = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)

    by_connection = _SubscriberConnectionIndex()


class _ContextsBySessionIndex(GlobalSecondaryIndex["ContextRecord"]):
    class Meta:
        index_name = "session_created"
        projection = AllProjection()

    session_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class _LiveContextsIndex(GlobalSecondaryIndex["ContextRecord"]):
    """Sparse: only contexts not deleted or ended carry `live_session` (their session's id): the per-session
    limit and the end of a session read live contexts only."""

    class Meta:
        index_name = "live_session"
        projection = KeysOnlyProjection()

    live_session = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class ContextRecord(Model):
    """A code context: a persistent interpreter in a session's sandbox (services/contexts.py)."""

    class Meta:
        table_name = "contexts"
        billing_mode = "PAY_PER_REQUEST"

    context_id = UnicodeAttribute(hash_key=True)
    session_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    language = UnicodeAttribute()
    cwd = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    live_session = UnicodeAttribute(null=True)
    executions = NumberAttribute(default=0)
    restarts = NumberAttribute(default=0)
    error_message = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    ended_at = UTCDateTimeAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # DynamoDB TTL (epoch seconds)

    by_session = _ContextsBySessionIndex()
    live = _LiveContextsIndex()


class _ProcessesBySessionIndex(GlobalSecondaryIndex["ProcessRecord"]):
    class Meta:
        index_name = "session_created"
        projection = AllProjection()

    session_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class _LiveProcessesIndex(GlobalSecondaryIndex["ProcessRecord"]):
    """Sparse: only starting and running processes carry `live_session` (their session's id)."""

    class Meta:
        index_name = "live_session"
        projection = KeysOnlyProjection()

    live_session = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class ProcessRecord(Model):
    """A background process in a session's sandbox (services/processes.py); its output lives in the
    output chunks under the process id."""

    class Meta:
        table_name = "processes"
        billing_mode = "PAY_PER_REQUEST"

    process_id = UnicodeAttribute(hash_key=True)
    session_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    cmd = UnicodeAttribute()
    cwd = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    live_session = UnicodeAttribute(null=True)
    pid = NumberAttribute(null=True)
    exit_code = NumberAttribute(null=True)
    signal = NumberAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    started_at = UTCDateTimeAttribute(null=True)
    ended_at = UTCDateTimeAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # DynamoDB TTL (epoch seconds)

    by_session = _ProcessesBySessionIndex()
    live = _LiveProcessesIndex()


# Logical table name -> model; the settings field that names each table in a deployment.
TABLES: dict[str, tuple[type[Model], str]] = {
    "sessions": (SessionRecord, "sessions_table"),
    "executions": (ExecutionRecord, "executions_table"),
    "templates": (TemplateRecord, "templates_table"),
    "api_keys": (ApiKeyRecord, "api_keys_table"),
    "runtime_nodes": (RuntimeNodeRecord, "runtime_nodes_table"),
    "warm_pool": (WarmSandboxRecord, "warm_pool_table"),
    "contexts": (ContextRecord, "contexts_table"),
    "processes": (ProcessRecord, "processes_table"),
    "output_chunks": (OutputChunkRecord, "output_chunks_table"),
    "tenants": (TenantRecord, "tenants_table"),
}


def bind_tables(settings: Settings) -> None:
    """Point every model at this deployment's table names (idempotent, cheap)."""
    for model, field in TABLES.values():
        model.Meta.table_name = getattr(settings, field)

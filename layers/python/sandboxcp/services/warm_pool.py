"""The warm pool: sandboxes started ahead of demand, per template, so a session skips the container start and
the executor's boot (SC-001). A warm executor waits unbound; a session claims one with a conditional write
(two sessions never get the same one) and binds it to itself over the executor socket (session id,
callback token, env vars). Only sessions asking for the template's default resources use it.

**Inline claims**: `POST /sessions` claims and binds a warm sandbox in the request itself and answers 201
with the session `running` (`claim_inline`); with none free (or a failed bind) it falls back to the launch
workflow, whose start step tries the pool again on the node placement chose (`claim`), then starts cold.

**Sizes** (`SANDBOX_WARM_POOL`, per deployment and per template): `template=N` keeps at least N and at
most 2N warm sandboxes; `template=FLOOR:CEILING` sets both; 0 disables a template's pool. Unset or empty:
the seed's defaults (python-datascience 20, python-basic 10, nodejs-basic 5); `none`: no pool at all. The
local stack defaults to `none` (sandboxcp.local.aws), so a laptop is not flooded; tests set small pools.

**Refill** (`schedule_refill_warm_pool`, every 10 s) follows demand: it counts the claims since its last
run (sandboxes it left available minus those still available and those that died), keeps an
exponentially weighted rate of claims per minute (time constant one minute), and sizes the pool to hold a
minute of claims, clamped to [floor, ceiling]. It retires warm sandboxes that died and, above the
target, the oldest surplus; new ones go to the node placement scores best for the template (affinity,
then load: services/placement.py)."""

from __future__ import annotations

import math
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandboxcp.domain import clock
from sandboxcp.domain.errors import SandboxError, StateConflict
from sandboxcp.domain.models import Session, Template, WarmSandbox
from sandboxcp.domain.ports import SandboxHandle, SandboxSpec
from sandboxcp.domain.states import SessionStatus
from sandboxcp.observability import logger, record_metric
from sandboxcp.services.deps import Dependencies
from sandboxcp.services.doorbell import doorbell
from sandboxcp.services.placement import Demand

POOL_PREFIX = "pool_"
RETIRED = "retired"  # the session id a retired warm sandbox is claimed for
DEFAULT_POOLS = "python-datascience=20,python-basic=10,nodejs-basic=5"  # the seed's
MAX_FLOOR, MAX_CEILING = 50, 100
HORIZON_S = 60.0  # the pool holds this much of the claim rate
RATE_TIME_CONSTANT_S = 60.0
_CLAIM_CANDIDATES = 5


def new_pool_id() -> str:
    return POOL_PREFIX + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(16))


@dataclass(frozen=True)
class PoolPolicy:
    floor: int
    ceiling: int


def pool_policies(spec: str) -> dict[str, PoolPolicy]:
    """Parse SANDBOX_WARM_POOL leniently (unparsable items are skipped); see the module docstring."""
    spec = spec.strip()
    if not spec:
        spec = DEFAULT_POOLS
    if spec.lower() in ("none", "off", "0"):
        return {}
    policies: dict[str, PoolPolicy] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        template_id, _, sizes = item.partition("=")
        low, _, high = sizes.strip().partition(":")
        if not low.strip().isdigit() or (high and not high.strip().isdigit()):
            continue
        floor = min(int(low), MAX_FLOOR)
        ceiling = min(max(int(high) if high else 2 * floor, floor), MAX_CEILING)
        if ceiling > 0:
            policies[template_id.strip()] = PoolPolicy(floor, ceiling)
    return policies


def pool_sizes(spec: str) -> dict[str, int]:
    """The floor of each template's pool."""
    return {t: p.floor for t, p in pool_policies(spec).items()}


def _policy(deps: Dependencies, template_id: str) -> PoolPolicy | None:
    return pool_policies(deps.settings.warm_pool).get(template_id)


@dataclass
class RefillReport:
    started: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    targets: dict[str, int] = field(default_factory=dict)


def _sandbox_env(deps: Dependencies, pool_id: str) -> dict[str, str]:
    via = deps.settings.sandbox_s3_via
    return {"SANDBOXCP_POOL_ID": pool_id, **({"SANDBOXCP_S3_VIA": via} if via else {})}


def demand_target(
    policy: PoolPolicy, previous: dict[str, Any] | None, *, alive: int, died: int, now: datetime
) -> tuple[int, float]:
    """(pool size to keep, claims per minute) from the refill's previous record and what is left now."""
    rate = 0.0
    if previous:
        claims = max(0, int(previous.get("after", 0)) - died - alive)
        elapsed = max(1.0, (now - previous["at"]).total_seconds())
        alpha = min(1.0, elapsed / RATE_TIME_CONSTANT_S)
        rate = alpha * claims * 60.0 / elapsed + (1 - alpha) * float(previous.get("rate", 0.0))
    wanted = math.ceil(rate * HORIZON_S / 60.0 - 1e-9)
    return min(policy.ceiling, max(policy.floor, wanted)), rate


def _retire(deps: Dependencies, warm: WarmSandbox) -> bool:
    if not deps.warm_pool.claim(warm.pool_id, RETIRED):
        return False  # a session took it meanwhile
    deps.warm_pool.remove(warm.pool_id)
    deps.runtime.destroy(warm.container_id)
    return True


def refill(deps: Dependencies) -> RefillReport:
    from sandboxcp.services.nodes import choose_node

    report = RefillReport()
    now = clock.now()
    policies = pool_policies(deps.settings.warm_pool)
    pools: dict[str, list[WarmSandbox]] = {
        t: deps.warm_pool.available(t, limit=p.ceiling + 10) for t, p in policies.items()
    }
    for template_id, policy in policies.items():
        template = deps.templates.get(template_id)
        if template is None or template.deprecated:
            continue
        alive: list[WarmSandbox] = []
        died = 0
        for warm in pools[template_id]:
            if deps.runtime.state(warm.container_id) in ("exited", "missing"):
                died += 1
                if _retire(deps, warm):
                    report.retired.append(warm.pool_id)
            else:
                alive.append(warm)
        pools[template_id] = alive
        previous = deps.warm_pool.get_demand(template_id)
        target, rate = demand_target(
            policy, dict(previous) if previous else None, alive=len(alive), died=died, now=now
        )
        report.targets[template_id] = target
        for warm in alive[target:]:  # oldest first: the surplus beyond the target goes
            if _retire(deps, warm):
                report.retired.append(warm.pool_id)
                pools[template_id].remove(warm)
        demand = Demand(
            template_id,
            template.image,
            template.default_resources.cpu_cores,
            template.default_resources.memory_mb,
            warm_eligible=False,
        )
        for _ in range(target - len(pools[template_id])):
            pool_id = new_pool_id()
            try:
                everyone = [w for ws in pools.values() for w in ws]
                node = choose_node(deps, deps.settings.runtime, demand, everyone)
                spec = SandboxSpec(
                    session_id=pool_id,
                    image=template.image,
                    node=node.node_id,
                    resources=template.default_resources,
                    network_enabled=template.network_enabled,
                    env=_sandbox_env(deps, pool_id),
                )
                handle = deps.runtime.start(spec)
            except SandboxError as err:
                logger.warning(
                    "warm sandbox not started", extra={"template": template_id, "reason": err.detail}
                )
                break
            warm = WarmSandbox(
                pool_id=pool_id,
                template_id=template_id,
                container_id=handle.container_id,
                executor_url=handle.executor_url,
                node=handle.node,
                created_at=clock.now(),
            )
            deps.warm_pool.add(warm)
            pools[template_id].append(warm)
            report.started.append(pool_id)
        deps.warm_pool.put_demand(
            template_id,
            {"after": len(pools[template_id]), "rate": round(rate, 4), "at": now},
            expected_at=previous["at"] if previous else None,
        )
    return report


def eligible(deps: Dependencies, session: Session, template: Template) -> bool:
    """The template has a pool and the session asks for the template's default resources."""
    return _policy(deps, template.id) is not None and session.resources == template.default_resources


_eligible = eligible


def available_everywhere(deps: Dependencies) -> list[WarmSandbox]:
    """Every pooled template's unclaimed warm sandboxes (what placement counts on each node)."""
    return [
        w
        for t, p in pool_policies(deps.settings.warm_pool).items()
        for w in deps.warm_pool.available(t, limit=p.ceiling + 10)
    ]


def claim(
    deps: Dependencies,
    session: Session,
    template: Template,
    callback_token: str,
    record: Callable[[SandboxHandle], None],
    node: str | None = None,
) -> SandboxHandle | None:
    """A warm sandbox (on `node`, when given) bound to `session`, or None (no pool for the template,
    custom resources, none left there). The launch workflow's start step. `record` writes the sandbox
    into the session before the bind (the bound executor reports container_ready at once); when it
    raises, the claimed sandbox is destroyed and leaves the pool."""
    if not _eligible(deps, session, template):
        return None
    for warm in deps.warm_pool.available(template.id, limit=_CLAIM_CANDIDATES):
        if node is not None and warm.node != node:
            continue
        if not warm.executor_url or not deps.warm_pool.claim(warm.pool_id, session.session_id):
            continue
        handle = SandboxHandle(container_id=warm.container_id, node=warm.node, executor_url=warm.executor_url)
        try:
            record(handle)
        except Exception:  # the session ended meanwhile (or its write failed): the sandbox goes
            deps.runtime.destroy(warm.container_id)
            deps.warm_pool.remove(warm.pool_id)
            raise
        try:
            deps.executor.bind(warm.executor_url, session.session_id, callback_token, session.env_vars)
        except SandboxError as err:
            _discard(deps, warm, err)
            continue
        record_metric("WarmPoolClaims", template=template.id)
        return handle
    record_metric("WarmPoolMisses", template=template.id)
    return None


def _discard(deps: Dependencies, warm: WarmSandbox, err: SandboxError) -> None:
    logger.warning("warm sandbox not bound", extra={"pool_id": warm.pool_id, "reason": err.detail})
    deps.runtime.destroy(warm.container_id)
    deps.warm_pool.remove(warm.pool_id)


def _inline_candidates(deps: Dependencies, template: Template, session: Session) -> list[WarmSandbox]:
    """Available warm sandboxes of the template on healthy nodes, the node placement prefers first."""
    from sandboxcp.services.nodes import node_views
    from sandboxcp.services.placement import rank

    warm = [w for w in deps.warm_pool.available(template.id, limit=_CLAIM_CANDIDATES) if w.executor_url]
    if not warm:
        return []
    healthy = deps.nodes.list(deps.settings.runtime, statuses=("healthy",))
    if not healthy:  # no registered node: the implicit single node holds them all
        return [] if deps.nodes.list(deps.settings.runtime, statuses=("unhealthy", "draining")) else warm
    names = {n.node_id for n in healthy}
    warm = [w for w in warm if w.node in names]
    if len({w.node for w in warm}) <= 1:
        return warm  # one node holds them: its score is warm + affinity whatever its load
    demand = Demand(
        template.id,
        template.image,
        session.resources.cpu_cores,
        session.resources.memory_mb,
        warm_eligible=True,
    )
    order = {
        s.node_id: i
        for i, s in enumerate(rank(node_views(deps, deps.settings.runtime, warm=warm) or [], demand))
    }
    return sorted((w for w in warm if w.node in order), key=lambda w: order[w.node])


def claim_inline(deps: Dependencies, session: Session, template: Template) -> Session | None:
    """Claim and bind a warm sandbox for a session just recorded as `creating` and make it `running`, all
    in the create request. None: no warm sandbox could be had (the caller starts the launch workflow).

    Order matters: the session gets its callback token's hash and its sandbox before the bind, because the
    bound executor reports container_ready at once (that report then finds the session running, or makes
    it so: either way one conditional write wins)."""
    from sandboxcp.services.auth import hash_secret, new_callback_token

    if not _eligible(deps, session, template):
        return None
    for warm in _inline_candidates(deps, template, session):
        assert warm.executor_url is not None
        if not deps.warm_pool.claim(warm.pool_id, session.session_id):
            continue
        token = new_callback_token(session.session_id)
        fields: dict[str, Any] = {
            "callback_token_hash": hash_secret(token),
            "container_id": warm.container_id,
            "executor_url": warm.executor_url,
            "runtime_node": warm.node,
        }
        deps.sessions.update_fields(session.session_id, fields, only_if=(SessionStatus.CREATING,))
        try:
            deps.executor.bind(warm.executor_url, session.session_id, token, session.env_vars)
        except SandboxError as err:
            _discard(deps, warm, err)
            deps.sessions.update_fields(
                session.session_id, dict.fromkeys(fields), only_if=(SessionStatus.CREATING,)
            )
            continue
        now = clock.now()
        try:
            running = deps.sessions.transition(
                session.session_id,
                SessionStatus.RUNNING,
                now=now,
                fields={"started_at": now, "last_activity_at": now},
                only_from=(SessionStatus.CREATING,),
            )
        except StateConflict:
            current = deps.sessions.get(session.session_id)
            if current is None or current.status != SessionStatus.RUNNING:
                raise
            running = current  # the executor's container_ready got there first
        doorbell.ring(session.session_id)  # a long poll waiting for the session to leave `creating`
        record_metric("WarmPoolClaims", template=template.id)
        record_metric(
            "LaunchLatency",
            (now - session.created_at).total_seconds() * 1000,
            unit="Milliseconds",
            runtime=session.runtime_type,
            tenant=session.tenant_id,
        )
        return running
    return None  # the launch workflow's claim counts the miss (once per session)

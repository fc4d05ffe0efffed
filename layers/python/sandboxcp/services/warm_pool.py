"""The warm pool: sandboxes started ahead of demand, per template, so a session skips the container start and
the executor's boot (SC-001). A warm executor waits unbound; a launching session claims one with a
conditional write (two launches never get the same one) and binds it to itself over the executor socket
(session id, callback token, env vars). Only sessions asking for the template's default resources use it;
any failure falls back to a cold start. `schedule_refill_warm_pool` keeps each pool at its size and retires
warm sandboxes that died. Sizes come from SANDBOX_WARM_POOL (e.g. "python-basic=3"); empty disables it."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

from sandboxcp.domain import clock
from sandboxcp.domain.errors import SandboxError
from sandboxcp.domain.models import Session, Template, WarmSandbox
from sandboxcp.domain.ports import SandboxHandle, SandboxSpec
from sandboxcp.observability import logger, record_metric
from sandboxcp.services.deps import Dependencies

POOL_PREFIX = "pool_"


def new_pool_id() -> str:
    return POOL_PREFIX + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(16))


def pool_sizes(spec: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        template_id, _, count = item.partition("=")
        if count.strip().isdigit():
            sizes[template_id.strip()] = min(int(count), 50)
    return sizes


@dataclass
class RefillReport:
    started: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)


def _sandbox_env(deps: Dependencies, pool_id: str) -> dict[str, str]:
    via = deps.settings.sandbox_s3_via
    return {"SANDBOXCP_POOL_ID": pool_id, **({"SANDBOXCP_S3_VIA": via} if via else {})}


def refill(deps: Dependencies) -> RefillReport:
    report = RefillReport()
    for template_id, size in pool_sizes(deps.settings.warm_pool).items():
        template = deps.templates.get(template_id)
        if template is None or template.deprecated:
            continue
        alive = 0
        for warm in deps.warm_pool.available(template_id, limit=size + 10):
            if deps.runtime.state(warm.container_id) in ("exited", "missing") and deps.warm_pool.claim(
                warm.pool_id, "retired"
            ):
                deps.warm_pool.remove(warm.pool_id)
                deps.runtime.destroy(warm.container_id)
                report.retired.append(warm.pool_id)
            else:
                alive += 1
        for _ in range(size - alive):
            pool_id = new_pool_id()
            spec = SandboxSpec(
                session_id=pool_id,
                image=template.image,
                resources=template.default_resources,
                network_enabled=template.network_enabled,
                env=_sandbox_env(deps, pool_id),
            )
            handle = deps.runtime.start(spec)
            deps.warm_pool.add(
                WarmSandbox(
                    pool_id=pool_id,
                    template_id=template_id,
                    container_id=handle.container_id,
                    executor_url=handle.executor_url,
                    node=handle.node,
                    created_at=clock.now(),
                )
            )
            report.started.append(pool_id)
    return report


def claim(
    deps: Dependencies, session: Session, template: Template, callback_token: str
) -> SandboxHandle | None:
    """A warm sandbox bound to `session`, or None (no pool for the template, custom resources, none left)."""
    if (
        template.id not in pool_sizes(deps.settings.warm_pool)
        or session.resources != template.default_resources
    ):
        return None
    for warm in deps.warm_pool.available(template.id, limit=5):
        if not warm.executor_url or not deps.warm_pool.claim(warm.pool_id, session.session_id):
            continue
        try:
            deps.executor.bind(warm.executor_url, session.session_id, callback_token, session.env_vars)
        except SandboxError as err:
            logger.warning("warm sandbox not bound", extra={"pool_id": warm.pool_id, "reason": err.detail})
            deps.runtime.destroy(warm.container_id)
            deps.warm_pool.remove(warm.pool_id)
            continue
        record_metric("WarmPoolClaims", template=template.id)
        return SandboxHandle(container_id=warm.container_id, node=warm.node, executor_url=warm.executor_url)
    record_metric("WarmPoolMisses", template=template.id)
    return None

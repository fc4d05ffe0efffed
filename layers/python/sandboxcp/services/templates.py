"""Template use cases: the default templates (seeded idempotently), reads, and the admin writes.

Admin writes (FR-030/031/034/035):
- ids match `^[a-z0-9][a-z0-9-]{1,62}$` and are unique (a second create -> 409 Sandbox.StateConflict);
- `image` / `base_image` are image references `[registry[:port]/]repo[:tag][@sha256:<64 hex>]` with a
  lowercase repository and a tag or a digest. What is *inside* an image (the sandbox-executor, uid 1000)
  cannot be seen from the API; the runtimes check it when a sandbox starts (see the ECS task-definition
  check) and sandboxes always run as 1000:1000 whatever the image says;
- `security_context` may only tighten the sandbox: `run_as_user` / `run_as_group` must be 1000 when given;
  `privileged`, `allow_privilege_escalation`, added capabilities, `run_as_non_root: false` and
  `read_only_root_filesystem: false` are refused;
- PUT is a partial update (name, image, base_image, pre_installed_packages, default_resources,
  security_context, languages, deprecated); `security_context` is replaced as a whole; updated_at moves
  forward; the write is conditional on the version read (a concurrent update -> 409);
- DELETE is refused (400 Sandbox.InvalidParameter, solution: deprecate) while creating/running sessions use
  the template, counted on the sparse `active` index. `{"deprecated": true}` hides a template from new
  sessions (sessions_create refuses it) and keeps it for existing ones; lists still show it.
  The count and the delete are two steps: a session created in between keeps a deleted template and its
  launch fails cleanly (start without a template image); deprecate first to close that window.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from sandbox_executor.contract import LANGUAGES, SANDBOX_UID, json_size
from sandboxcp.domain import clock
from sandboxcp.domain.errors import Forbidden, InvalidParameter, SandboxError, StateConflict, TemplateNotFound
from sandboxcp.domain.inputs import RequestBody
from sandboxcp.domain.models import Language, Principal, Template
from sandboxcp.domain.ports import Page
from sandboxcp.domain.resources import ResourceLimit, ResourceLimitRequest
from sandboxcp.observability import audit, record_metric
from sandboxcp.services.deps import Dependencies

_DEFAULTS: tuple[dict[str, object], ...] = (
    {
        "id": "python-basic",
        "name": "Python 3.11 basic",
        "image": "sandboxcp/python-basic:latest",
        "base_image": "debian:12-slim",
        "languages": ["python", "shell"],
        "default_resources": ResourceLimit(cpu="1", memory="512Mi", disk="1Gi"),
    },
    {
        "id": "python-datascience",
        "name": "Python 3.11 data science",
        "image": "sandboxcp/python-datascience:latest",
        "base_image": "debian:12-slim",
        "pre_installed_packages": ["numpy", "pandas"],
        "languages": ["python", "shell"],
        "default_resources": ResourceLimit(cpu="2", memory="2Gi", disk="5Gi"),
    },
    {
        "id": "nodejs-basic",
        "name": "Node.js 20 basic",
        "image": "sandboxcp/nodejs-basic:latest",
        "base_image": "debian:12-slim",
        "languages": ["javascript", "shell"],
        "default_resources": ResourceLimit(cpu="1", memory="512Mi", disk="1Gi"),
    },
)


def default_templates() -> list[Template]:
    now = clock.now()
    return [
        Template.model_validate(
            {
                **spec,
                "security_context": {
                    "run_as_user": 1000,
                    "run_as_group": 1000,
                    "network_enabled": False,
                    "max_processes": 128,
                },
                "created_at": now,
                "updated_at": now,
            }
        )
        for spec in _DEFAULTS
    ]


def seed_default_templates(deps: Dependencies) -> list[str]:
    """Create the default templates that are missing; existing ones (maybe edited) are left alone."""
    return [t.id for t in default_templates() if deps.templates.put_if_absent(t)]


def get_template(deps: Dependencies, template_id: str) -> Template:
    template = deps.templates.get(template_id)
    if template is None:
        raise TemplateNotFound(f"Template '{template_id}' does not exist")
    return template


def list_templates(
    deps: Dependencies, *, limit: int, offset: int, next_token: str | None = None
) -> Page[Template]:
    from sandboxcp.services.paging import paged

    return paged(
        deps.settings,
        "templates",
        offset=offset,
        next_token=next_token,
        fetch=lambda start_key, with_total: deps.templates.list(
            limit=limit, offset=offset, start_key=start_key, with_total=with_total
        ),
    )


# -- admin writes ------------------------------------------------------------------------------------------
TEMPLATE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_RE = re.compile(
    rf"^(?:{_HOST}/)?{_PATH}(?:/{_PATH})*(?P<tag>:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?P<digest>@sha256:[a-f0-9]{64})?$"
)
SANDBOX_ID = SANDBOX_UID
MAX_NAME_CHARS = 128
MAX_IMAGE_CHARS = 512
MAX_PACKAGES = 200
MAX_PACKAGE_CHARS = 200
MAX_SECURITY_CONTEXT_BYTES = 4096  # as compact JSON


def image_problem(image: str) -> str | None:
    """Why `image` is not an acceptable image reference, or None."""
    if not image or image != image.strip() or any(c.isspace() for c in image):
        return "must be a non-empty image reference without spaces"
    if len(image) > MAX_IMAGE_CHARS:
        return f"is longer than {MAX_IMAGE_CHARS} characters"
    m = IMAGE_RE.match(image)
    if not m:
        return "is not an image reference like registry.example.com/team/repo:tag (lowercase repository)"
    if not (m.group("tag") or m.group("digest")):
        return "needs a tag (repo:tag) or a digest (repo@sha256:...)"
    return None


def security_context_problems(ctx: dict[str, Any]) -> list[str]:
    """What in a template's security context would weaken the sandbox (FR-031, DESIGN 'must')."""
    problems = []
    for key in ("run_as_user", "run_as_group"):
        if key in ctx and (type(ctx[key]) is not int or ctx[key] != SANDBOX_ID):
            problems.append(f"{key} must be {SANDBOX_ID}")
    for key in ("privileged", "allow_privilege_escalation"):
        if ctx.get(key) not in (None, False):
            problems.append(f"{key} must be false")
    for key in ("run_as_non_root", "read_only_root_filesystem"):
        if ctx.get(key) not in (None, True):
            problems.append(f"{key} must be true")
    caps = ctx.get("capabilities")
    if caps is not None and (not isinstance(caps, dict) or caps.get("add")):
        problems.append("capabilities may only drop (no 'add')")
    if ctx.get("cap_add"):
        problems.append("capabilities cannot be added (cap_add)")
    if "network_enabled" in ctx and not isinstance(ctx["network_enabled"], bool):
        problems.append("network_enabled must be true or false")
    if "max_processes" in ctx and (
        type(ctx["max_processes"]) is not int or not 32 <= ctx["max_processes"] <= 1024
    ):
        problems.append("max_processes must be an integer between 32 and 1024")
    if json_size(ctx) > MAX_SECURITY_CONTEXT_BYTES:
        problems.append(f"the security context is larger than {MAX_SECURITY_CONTEXT_BYTES} bytes as JSON")
    return problems


class _TemplateFields(RequestBody):
    @field_validator("image", "base_image", check_fields=False)
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None and (problem := image_problem(v)):
            raise ValueError(f"'{v[:MAX_IMAGE_CHARS]}' {problem}")
        return v

    @field_validator("pre_installed_packages", check_fields=False)
    @classmethod
    def _packages(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if len(v) > MAX_PACKAGES:
            raise ValueError(f"at most {MAX_PACKAGES} packages")
        for pkg in v:
            if not pkg.strip() or len(pkg) > MAX_PACKAGE_CHARS or any(ord(c) < 32 for c in pkg):
                raise ValueError(
                    f"'{pkg[:MAX_PACKAGE_CHARS]}' is not a package requirement "
                    f"(1-{MAX_PACKAGE_CHARS} characters, no control characters)"
                )
        return v

    @field_validator("languages", check_fields=False)
    @classmethod
    def _languages(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("languages must not repeat")
        return v

    @field_validator("security_context", check_fields=False)
    @classmethod
    def _security(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and (problems := security_context_problems(v)):
            raise ValueError("; ".join(problems))
        return v


class CreateTemplateRequest(_TemplateFields):
    id: str = Field(pattern=TEMPLATE_ID_RE.pattern, examples=["python-custom"])
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    image: str = Field(examples=["registry.example.com/sandbox-python:3.11-custom"])
    base_image: str | None = None
    pre_installed_packages: list[str] = Field(default_factory=list)
    default_resources: ResourceLimitRequest
    security_context: dict[str, Any] = Field(default_factory=dict)
    languages: list[Language] = Field(default=["python", "shell"], min_length=1, max_length=len(LANGUAGES))
    deprecated: bool = False


class UpdateTemplateRequest(_TemplateFields):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)
    image: str | None = None
    base_image: str | None = None
    pre_installed_packages: list[str] | None = None
    default_resources: ResourceLimitRequest | None = None
    security_context: dict[str, Any] | None = None
    languages: list[Language] | None = Field(default=None, min_length=1, max_length=len(LANGUAGES))
    deprecated: bool | None = None


def _secure_defaults(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"run_as_user": SANDBOX_ID, "run_as_group": SANDBOX_ID, "network_enabled": False, **ctx}


@contextmanager
def _audited(action: str, caller: Principal, template_id: str) -> Iterator[None]:
    """Audit and count one admin write, whatever its outcome."""
    outcome = "success"
    try:
        yield
    except Forbidden:
        outcome = "denied"
        raise
    except TemplateNotFound:
        outcome = "not_found"
        raise
    except SandboxError:
        outcome = "refused"
        raise
    except Exception:
        outcome = "failed"
        raise
    finally:
        audit(f"template.{action}", outcome, tenant=caller.tenant_id, template_id=template_id)
        record_metric("TemplateChanges", 1, action=action, outcome=outcome)


def _require_admin(caller: Principal) -> None:
    if not caller.is_admin:
        raise Forbidden("Only an admin key can change templates")


def create_template(deps: Dependencies, caller: Principal, req: CreateTemplateRequest) -> Template:
    with _audited("create", caller, req.id):
        _require_admin(caller)
        now = clock.now()
        template = Template(
            **req.model_dump(exclude={"security_context", "default_resources"}),
            default_resources=ResourceLimit.model_validate(req.default_resources.model_dump()),
            security_context=_secure_defaults(req.security_context),
            created_at=now,
            updated_at=now,
        )
        if not deps.templates.put_if_absent(template):
            raise StateConflict(
                f"Template '{req.id}' already exists",
                solution="Choose another id, or update the existing template with PUT /api/v1/templates/{id}",
            )
        return template


def update_template(
    deps: Dependencies, caller: Principal, template_id: str, req: UpdateTemplateRequest
) -> Template:
    with _audited("update", caller, template_id):
        _require_admin(caller)
        changes = req.model_dump(exclude_unset=True, exclude={"default_resources"})
        if "default_resources" in req.model_fields_set:
            changes["default_resources"] = req.default_resources
        nulls = sorted(k for k, v in changes.items() if v is None and k != "base_image")
        if nulls:
            raise InvalidParameter(f"{', '.join(nulls)} cannot be null")
        if not changes:
            raise InvalidParameter("the request changes nothing: send at least one field to update")
        current = get_template(deps, template_id)
        if "security_context" in changes:
            changes["security_context"] = _secure_defaults(changes["security_context"])
        # updated_at always moves forward, even when two updates fall within the clock's resolution.
        now = max(clock.now(), current.updated_at + timedelta(microseconds=1))
        updated = current.model_copy(update={**changes, "updated_at": now})
        updated = Template.model_validate(updated.model_dump())
        deps.templates.replace(updated, expected_updated_at=current.updated_at)
        return updated


def delete_template(deps: Dependencies, caller: Principal, template_id: str) -> None:
    with _audited("delete", caller, template_id):
        _require_admin(caller)
        get_template(deps, template_id)
        in_use = deps.ops.count_active_for_template(template_id)
        if in_use:
            raise InvalidParameter(
                f"Template '{template_id}' is used by {in_use} active session(s) and cannot be deleted",
                solution=(
                    f"Deprecate it instead (PUT /api/v1/templates/{template_id} with "
                    '{"deprecated": true}): new sessions cannot use it, existing ones keep running; '
                    "delete it once they have ended"
                ),
            )
        if not deps.templates.delete(template_id):
            raise TemplateNotFound(f"Template '{template_id}' does not exist")

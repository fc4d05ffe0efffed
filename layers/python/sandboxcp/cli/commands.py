"""The CLI's API commands, each a thin layer over the Python SDK (sandboxcp_client)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandboxcp.cli.output import Progress, print_fields, print_json, print_table
from sandboxcp.domain.resources import ResourceLimit

if TYPE_CHECKING:
    from sandboxcp_client import SandboxClient
    from sandboxcp_client.models import ExecutionResult, SessionInfo, Template

LANGUAGE_BY_SUFFIX = {
    ".py": "python",
    ".js": "javascript",
    ".cjs": "javascript",
    ".mjs": "javascript",
    ".sh": "shell",
}
EXIT_TIMEOUT = 124  # as timeout(1)


def _session_columns() -> list[tuple[str, Any]]:
    return [
        ("session", lambda s: s.session_id),
        ("status", lambda s: s.status),
        ("template", lambda s: s.template_id),
        ("runtime", lambda s: s.runtime_type),
        ("created", lambda s: s.created_at),
        ("timeout", lambda s: s.timeout),
    ]


def _show_session(info: SessionInfo, args: argparse.Namespace) -> None:
    if args.json:
        print_json(info)
        return
    res = info.resources
    print_fields(
        [
            ("session_id", info.session_id),
            ("status", info.status),
            ("template", info.template_id),
            ("runtime", info.runtime_type),
            ("container", info.container_id),
            ("resources", f"cpu={res.cpu} memory={res.memory} disk={res.disk}" if res else None),
            ("timeout", info.timeout),
            ("workspace", info.workspace_path),
            ("created", info.created_at),
            ("error", info.error_message),
        ]
    )


def _env_pairs(items: list[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--env takes NAME=VALUE, got {item!r}")
        env[name] = value
    return env


# -- sessions ----------------------------------------------------------------------------------------------
def sessions_create(client: SandboxClient, args: argparse.Namespace) -> int:
    resources = None
    if args.cpu or args.memory or args.disk:
        template = client.templates.get(args.template)
        base = template.default_resources.model_dump(exclude_none=True) if template.default_resources else {}
        resources = {
            **base,
            **{k: v for k, v in (("cpu", args.cpu), ("memory", args.memory), ("disk", args.disk)) if v},
        }
    info = client.sessions.create(
        args.template,
        timeout=args.timeout,
        resources=resources,
        env_vars=_env_pairs(args.env),
        idempotency_key=args.idempotency_key,
    )
    if args.wait:
        info = client.sessions.wait_until_running(info.session_id, timeout=args.launch_timeout)
    if args.json:
        print_json(info)
    elif args.quiet:
        print(info.session_id)
    else:
        _show_session(info, args)
    return 0 if info.status in ("creating", "running") else 1


def sessions_ls(client: SandboxClient, args: argparse.Namespace) -> int:
    page = client.sessions.list(
        status=args.status, template=args.template, limit=args.limit, offset=args.offset
    )
    if args.json:
        print_json(page)
        return 0
    print_table(page.sessions, _session_columns())
    if page.total > len(page.sessions):
        print(f"({len(page.sessions)} of {page.total}; use --limit/--offset)", file=sys.stderr)
    return 0


def sessions_get(client: SandboxClient, args: argparse.Namespace) -> int:
    _show_session(client.sessions.get(args.session), args)
    return 0


def sessions_rm(client: SandboxClient, args: argparse.Namespace) -> int:
    results = []
    for sid in args.sessions:
        message = client.sessions.terminate(sid)
        results.append({"session_id": sid, "message": message})
        if not args.json:
            print(f"{sid}: {message}")
    if args.json:
        print_json(results)
    return 0


# -- exec --------------------------------------------------------------------------------------------------
def _read_code(args: argparse.Namespace) -> tuple[str, str]:
    """The code and its language (from --lang, else the file's suffix, else python)."""
    if args.code is not None:
        return args.code, args.lang or "python"
    if args.file in (None, "-"):
        if args.file is None and sys.stdin.isatty():
            raise SystemExit("give a FILE, '-' (stdin) or -c CODE")
        return sys.stdin.read(), args.lang or "python"
    path = Path(args.file)
    return path.read_text(encoding="utf-8"), args.lang or LANGUAGE_BY_SUFFIX.get(
        path.suffix.lower(), "python"
    )


def _event(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
    value = json.loads(text)
    if not isinstance(value, dict):
        raise SystemExit("--event must be a JSON object")
    return value


def exit_status(result: ExecutionResult) -> int:
    """0 when the run succeeded; its exit code when it failed with one; 124 on timeout; else 1."""
    if result.status == "success":
        return 0
    if result.status == "timeout":
        return EXIT_TIMEOUT
    return result.exit_code if 0 < result.exit_code < 256 else 1


def exec_code(client: SandboxClient, args: argparse.Namespace) -> int:
    code, language = _read_code(args)
    result = client.executions.run(
        args.session,
        code,
        language=language,  # type: ignore[arg-type]  # argparse restricts it to the three languages
        event=_event(args.event),
        timeout=args.timeout,
    )
    if args.json:
        print_json(result)
        return exit_status(result)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.return_value is not None:
        print(json.dumps(result.return_value) if result.text is None else result.text)
    elif result.text is not None:
        print(result.text)
    if result.stdout_truncated or result.stderr_truncated:
        print("(output truncated at 1 MiB)", file=sys.stderr)
    for image in result.images:
        print(f"(image: {image.mime_type}, {len(image.data)} bytes; use --json to get it)", file=sys.stderr)
    if result.status != "success":
        print(f"[{result.status}: exit code {result.exit_code}, {result.error_code}]", file=sys.stderr)
    return exit_status(result)


# -- files -------------------------------------------------------------------------------------------------
def files_put(client: SandboxClient, args: argparse.Namespace) -> int:
    remote = args.remote or (Path(args.local).name if args.local != "-" else None)
    if not remote:
        raise SystemExit("give the workspace path when reading from stdin: files put SESSION - PATH")
    progress = Progress(f"uploading {remote}")
    source: Any = sys.stdin.buffer if args.local == "-" else Path(args.local)
    stored = client.files.upload(args.session, remote, source, progress=progress)
    progress.finish()
    if args.json:
        print_json(stored)
    else:
        print(f"{stored.path}  {stored.size} bytes")
    return 0


def files_get(client: SandboxClient, args: argparse.Namespace) -> int:
    local = args.local or Path(args.remote).name
    progress = Progress(f"downloading {args.remote}")
    if local == "-":
        written = client.files.download(args.session, args.remote, sys.stdout.buffer, progress=progress)
        sys.stdout.flush()
    else:
        written = client.files.download(args.session, args.remote, local, progress=progress)
    progress.finish()
    if local != "-":
        if args.json:
            print_json({"path": args.remote, "local": str(local), "size": written})
        else:
            print(f"{local}  {written} bytes")
    return 0


def files_ls(client: SandboxClient, args: argparse.Namespace) -> int:
    files = client.files.list(args.session)
    if args.json:
        print_json(files)
        return 0
    print_table(
        files,
        [("path", lambda f: f.path), ("size", lambda f: f.size), ("modified", lambda f: f.last_modified)],
    )
    return 0


# -- templates ---------------------------------------------------------------------------------------------
def _template_columns() -> list[tuple[str, Any]]:
    return [
        ("id", lambda t: t.id),
        ("name", lambda t: t.name),
        ("languages", lambda t: t.languages),
        ("cpu", lambda t: t.default_resources.cpu if t.default_resources else None),
        ("memory", lambda t: t.default_resources.memory if t.default_resources else None),
        ("deprecated", lambda t: t.deprecated),
    ]


def _show_template(t: Template, args: argparse.Namespace) -> None:
    if args.json:
        print_json(t)
        return
    res = t.default_resources
    print_fields(
        [
            ("id", t.id),
            ("name", t.name),
            ("image", t.image),
            ("languages", t.languages),
            ("packages", t.pre_installed_packages),
            ("resources", f"cpu={res.cpu} memory={res.memory} disk={res.disk}" if res else None),
            ("security", json.dumps(t.security_context, sort_keys=True)),
            ("deprecated", t.deprecated),
            ("updated", t.updated_at),
        ]
    )


def templates_ls(client: SandboxClient, args: argparse.Namespace) -> int:
    page = client.templates.list(limit=args.limit, offset=args.offset)
    if args.json:
        print_json(page)
    else:
        print_table(page.templates, _template_columns())
    return 0


def templates_get(client: SandboxClient, args: argparse.Namespace) -> int:
    _show_template(client.templates.get(args.template), args)
    return 0


def templates_create(client: SandboxClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.file:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        body = json.loads(text)
    flags = {
        "id": args.id,
        "name": args.name,
        "image": args.image,
        "base_image": args.base_image,
        "languages": args.languages.split(",") if args.languages else None,
        "pre_installed_packages": args.packages.split(",") if args.packages else None,
    }
    body.update({k: v for k, v in flags.items() if v is not None})
    if args.cpu or args.memory or args.disk:
        # The API wants all three: flags left out take the platform's defaults.
        defaults = {k: v for k, v in ResourceLimit().model_dump().items() if k in ("cpu", "memory", "disk")}
        res = {**defaults, **dict(body.get("default_resources") or {})}
        res.update({k: v for k, v in (("cpu", args.cpu), ("memory", args.memory), ("disk", args.disk)) if v})
        body["default_resources"] = res
    missing = [k for k in ("id", "name", "image", "default_resources") if k not in body]
    if missing:
        raise SystemExit(f"templates create needs {', '.join(missing)} (flags or --file JSON)")
    template_id, name, image, resources = (body.pop(k) for k in ("id", "name", "image", "default_resources"))
    created = client.templates.create(
        template_id, name=name, image=image, default_resources=resources, **body
    )
    _show_template(created, args)
    return 0


def templates_rm(client: SandboxClient, args: argparse.Namespace) -> int:
    for template_id in args.templates:
        client.templates.delete(template_id)
        if not args.json:
            print(f"{template_id}: deleted")
    if args.json:
        print_json([{"id": t, "deleted": True} for t in args.templates])
    return 0


# -- logs, keys --------------------------------------------------------------------------------------------
def logs(client: SandboxClient, args: argparse.Namespace) -> int:
    if not args.follow:
        text = client.containers.logs(args.container, tail=args.tail, since=args.since)
        sys.stdout.write(text)
        return 0
    try:
        for line in client.containers.follow(args.container, tail=args.tail, poll_interval=args.interval):
            print(line, flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def keys_create(client: SandboxClient, args: argparse.Namespace) -> int:
    key = client.keys.create(args.tenant, admin=args.admin)
    if args.json:
        print_json(key)
        return 0
    print(f"tenant={key.tenant_id} admin={str(key.admin).lower()}")
    print(key.api_key)  # alone on the last line: KEY=$(sandboxcp keys create ... | tail -n 1)
    return 0

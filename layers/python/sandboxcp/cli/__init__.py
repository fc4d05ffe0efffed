"""The `sandboxcp` command.

    sandboxcp local [--host] [--port] [--runtime R] [--state-dir]                the whole stack, locally
                    (R: process, docker, ecs, eks or docker-remote)
    sandboxcp keys create --tenant T [--admin]                                   an API key (admin key)
    sandboxcp sessions create|ls|get|rm                                          sessions
    sandboxcp exec SESSION [--lang L] [FILE|-|-c CODE]                           run code; exits non-zero
                                                                                 when the code fails
    sandboxcp files put|get|ls                                                   workspace files
    sandboxcp templates ls|get|create|rm                                         templates (writes: admin)
    sandboxcp logs CONTAINER [--tail N] [--follow]                               a sandbox's log
    sandboxcp mcp                                                                MCP server on stdio

The API commands read `SANDBOXCP_URL` (default http://127.0.0.1:8000) and `SANDBOXCP_API_KEY`, or
`--url` / `--api-key`; they print tables, or JSON with `--json`. Errors print their `solution`. They are
built on the Python SDK (clients/python, `sandboxcp_client`), imported only when an API command runs, so
`sandboxcp local` needs none of it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandboxcp_client import SandboxClient

Command = Callable[["SandboxClient", argparse.Namespace], int]


def _common() -> argparse.ArgumentParser:
    """Options every API command takes, before or after its name (`default=SUPPRESS` lets the
    sub-command's copy leave the top-level value alone when it is not given)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="API base URL (env SANDBOXCP_URL)")
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="API key (env SANDBOXCP_API_KEY)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    return common


def build_parser() -> argparse.ArgumentParser:
    from sandboxcp.cli import commands as c

    common = _common()
    parser = argparse.ArgumentParser(prog="sandboxcp", description="Sandbox Control Plane")
    parser.add_argument("--url", default=None, help="API base URL (env SANDBOXCP_URL)")
    parser.add_argument("--api-key", default=None, help="API key (env SANDBOXCP_API_KEY)")
    parser.add_argument("--json", action="store_true", default=False, help="print JSON (for scripts)")
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="run the whole control plane locally")
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=int, default=8000, help="0: a free port, printed as SANDBOXCP_URL")
    local.add_argument(
        "--runtime", choices=["process", "docker", "ecs", "eks", "docker-remote"], default="process"
    )
    local.add_argument("--state-dir", default=None, help="sandbox sockets, workspaces, logs")

    sub.add_parser("mcp", help="serve the MCP tools on stdio (for AI agents)", parents=[common])

    def group(name: str, help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        p = sub.add_parser(name, help=help_text)
        return p.add_subparsers(dest=f"{name}_command", required=True)

    def leaf(
        subs: argparse._SubParsersAction[argparse.ArgumentParser], name: str, fn: Command, help_text: str
    ) -> argparse.ArgumentParser:
        p = subs.add_parser(name, help=help_text, parents=[common])
        p.set_defaults(run=fn)
        return p

    # keys
    keys = group("keys", "manage API keys")
    p = leaf(keys, "create", c.keys_create, "issue an API key for a tenant (needs an admin key)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--admin", action="store_true")

    # sessions
    sessions = group("sessions", "sandbox sessions")
    p = leaf(sessions, "create", c.sessions_create, "create a session")
    p.add_argument("--template", "-t", default="python-basic")
    p.add_argument("--timeout", type=int, default=None, help="lifetime in seconds (60-3600, default 300)")
    p.add_argument("--cpu")
    p.add_argument("--memory")
    p.add_argument("--disk")
    p.add_argument("--env", "-e", action="append", metavar="NAME=VALUE")
    p.add_argument("--idempotency-key", default=None, help="default: a new UUID")
    p.add_argument("--no-wait", dest="wait", action="store_false", help="return while still creating")
    p.add_argument("--launch-timeout", type=float, default=90.0)
    p.add_argument("--quiet", "-q", action="store_true", help="print the session id only")
    p = leaf(sessions, "ls", c.sessions_ls, "list sessions")
    p.add_argument("--status")
    p.add_argument("--template")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p = leaf(sessions, "get", c.sessions_get, "show a session")
    p.add_argument("session")
    p = leaf(sessions, "rm", c.sessions_rm, "terminate sessions")
    p.add_argument("sessions", nargs="+")

    # exec
    p = sub.add_parser("exec", help="run code in a session", parents=[common])
    p.set_defaults(run=c.exec_code)
    p.add_argument("session")
    p.add_argument("file", nargs="?", help="a file, or '-' for stdin")
    p.add_argument("-c", "--code", help="the code itself")
    p.add_argument("--lang", "-l", choices=["python", "javascript", "shell"], help="default: from the file")
    p.add_argument("--event", help="JSON object (or @file) given to handler(event)")
    p.add_argument("--timeout", type=int, default=None, help="seconds (1-3600, default 30)")

    # files
    files = group("files", "workspace files")
    p = leaf(files, "put", c.files_put, "upload a file (up to 100 MB)")
    p.add_argument("session")
    p.add_argument("local", help="local file, or '-' for stdin")
    p.add_argument("remote", nargs="?", help="workspace path (default: the file's name)")
    p = leaf(files, "get", c.files_get, "download a file")
    p.add_argument("session")
    p.add_argument("remote", help="workspace path")
    p.add_argument("local", nargs="?", help="local path, or '-' for stdout (default: the file's name)")
    p = leaf(files, "ls", c.files_ls, "list the workspace")
    p.add_argument("session")

    # templates
    templates = group("templates", "sandbox templates")
    p = leaf(templates, "ls", c.templates_ls, "list templates")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p = leaf(templates, "get", c.templates_get, "show a template")
    p.add_argument("template")
    p = leaf(templates, "create", c.templates_create, "create a template (admin)")
    p.add_argument("--file", "-f", help="the template as JSON (a file or '-'); flags override it")
    p.add_argument("--id")
    p.add_argument("--name")
    p.add_argument("--image")
    p.add_argument("--base-image")
    p.add_argument("--languages", help="comma-separated: python,javascript,shell")
    p.add_argument("--packages", help="comma-separated pre-installed packages")
    p.add_argument("--cpu")
    p.add_argument("--memory")
    p.add_argument("--disk")
    p = leaf(templates, "rm", c.templates_rm, "delete templates (admin)")
    p.add_argument("templates", nargs="+")

    # logs
    p = sub.add_parser("logs", help="a sandbox's log", parents=[common])
    p.set_defaults(run=c.logs)
    p.add_argument("container", help="container id or session id")
    p.add_argument("--tail", type=int, default=100)
    p.add_argument("--since", help="ISO time: only lines at or after it")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    p.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    return parser


def _client(args: argparse.Namespace) -> SandboxClient:
    try:
        from sandboxcp_client import SandboxClient
    except ImportError as err:  # pragma: no cover - setup.sh installs it
        raise SystemExit(
            "the API commands need the Python SDK: pip install ./clients/python (scripts/setup.sh does)"
        ) from err
    return SandboxClient(args.url, args.api_key)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "local":
        from sandboxcp.local.stack import run

        return run(args.host, args.port, args.runtime, args.state_dir)
    if args.command == "mcp":
        from sandboxcp.mcp_server import serve

        serve(url=args.url, api_key=args.api_key)
        return 0
    if args.command == "keys" and not (args.api_key or os.environ.get("SANDBOXCP_API_KEY")):
        print("SANDBOXCP_API_KEY must hold an admin key", file=sys.stderr)
        return 2
    from sandboxcp.cli.output import print_error
    from sandboxcp_client.errors import SandboxError

    with _client(args) as client:
        try:
            code: int = args.run(client, args)
            return code
        except SandboxError as err:
            print_error(err, as_json=args.json)
            return 1
        except BrokenPipeError:  # `sandboxcp ... | head`
            return 0


if __name__ == "__main__":
    sys.exit(main())

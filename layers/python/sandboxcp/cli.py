"""The `sandboxcp` command: `local` starts the local stack; `keys create` issues an API key through the
API (admin key in SANDBOXCP_API_KEY, URL in SANDBOXCP_URL), so it works locally and deployed alike."""

from __future__ import annotations

import argparse
import os
import sys


def _keys_create(args: argparse.Namespace) -> int:
    import httpx

    url = os.environ.get("SANDBOXCP_URL", "http://127.0.0.1:8000").rstrip("/")
    admin_key = os.environ.get("SANDBOXCP_API_KEY")
    if not admin_key:
        print("SANDBOXCP_API_KEY must hold an admin key", file=sys.stderr)
        return 2
    resp = httpx.post(
        f"{url}/api/v1/keys",
        json={"tenant_id": args.tenant, "admin": args.admin},
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    if resp.status_code != 201:
        print(f"key not created: HTTP {resp.status_code} {resp.text}", file=sys.stderr)
        return 1
    body = resp.json()
    print(f"tenant={body['tenant_id']} admin={str(body['admin']).lower()}")
    print(body["api_key"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandboxcp")
    sub = parser.add_subparsers(dest="command", required=True)
    local = sub.add_parser("local", help="run the whole control plane locally")
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=int, default=8000)
    local.add_argument("--runtime", choices=["process", "docker"], default="process")
    local.add_argument("--state-dir", default=None, help="sandbox sockets, workspaces, logs")
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="issue an API key for a tenant")
    create.add_argument("--tenant", required=True)
    create.add_argument("--admin", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "local":
        from sandboxcp.local.stack import run

        return run(args.host, args.port, args.runtime, args.state_dir)
    return _keys_create(args)


if __name__ == "__main__":
    sys.exit(main())

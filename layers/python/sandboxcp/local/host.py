"""Host helpers the stand-ins share: iptables rules, isolated Docker bridges, whether a process is there."""

from __future__ import annotations

import os
import subprocess
from typing import Any


def iptables(*args: str, check: bool = True) -> None:
    """`iptables -w ARGS` (waiting for the xtables lock); with `check`, a failure raises."""
    done = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"iptables {' '.join(args)}: {done.stderr.strip()}")


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def create_isolated_bridge(
    engine: Any, name: str, bridge: str, *, internal: bool, labels: dict[str, str]
) -> None:
    """A Docker bridge network `name` on the host bridge `bridge`, containers on it unable to reach each
    other (no inter-container traffic); `internal`: no route out either."""
    engine.call(
        "POST",
        "/networks/create",
        body={
            "Name": name,
            "Driver": "bridge",
            "Internal": internal,
            "CheckDuplicate": True,
            "Options": {
                "com.docker.network.bridge.enable_icc": "false",
                "com.docker.network.bridge.name": bridge,
            },
            "Labels": labels,
        },
        ok=(201,),
    )


def network_gateway(engine: Any, name: str) -> str:
    """The host's address on Docker network `name`."""
    return str(engine.call("GET", f"/networks/{name}").json()["IPAM"]["Config"][0]["Gateway"])

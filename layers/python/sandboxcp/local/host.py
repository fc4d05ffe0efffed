"""Host helpers the stand-ins share: iptables rules and whether a process is still there."""

from __future__ import annotations

import os
import subprocess


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

"""Where the control plane keeps sandboxes' executor sockets on a local host.

A unix socket path holds at most 107 bytes, and state directories (pytest's, a user's) can be long, so
the sockets live in a short, root-only directory of their own: /run/sandboxcp/<hash of the state dir>
(or under the temp dir for a launcher that cannot write /run). Nothing in it is ever visible to a
process sandbox; a docker sandbox sees only its own sealed subdirectory (docker.py).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def socket_dir(state_dir: Path) -> Path:
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    for base in (Path("/run/sandboxcp"), Path(tempfile.gettempdir()) / f"sandboxcp-{os.geteuid()}"):
        try:
            base.mkdir(mode=0o711, exist_ok=True)
            path = base / digest
            path.mkdir(mode=0o700, exist_ok=True)
            os.chmod(path, 0o711)  # traversable (docker binds a subdir), not listable
            return path
        except OSError:
            continue
    raise OSError("no directory for executor sockets (/run and the temp dir are not writable)")

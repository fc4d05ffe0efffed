"""``python3 -m sandbox_executor``: supervise the agent (``sandbox_executor.app``), configured from the
environment, restarting it if it dies; see supervisor.py."""

import os
import sys

# Never import from the working directory: `-m` puts it first on sys.path, and it is /workspace, which the
# sandbox's own (hostile) code writes. The executor imports some modules on first use, after code has run:
# a `shutil.py` dropped there would run inside the executor, next to the callback token. Runtimes start us
# with -P (no unsafe path); this holds when one does not.
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]

from sandbox_executor.supervisor import main  # noqa: E402

raise SystemExit(main())

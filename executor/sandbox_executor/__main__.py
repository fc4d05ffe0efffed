"""``python3 -m sandbox_executor``: supervise the agent (``sandbox_executor.app``), configured from the
environment, restarting it if it dies; see supervisor.py."""

from sandbox_executor.supervisor import main

raise SystemExit(main())

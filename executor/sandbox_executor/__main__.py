"""``python3 -m sandbox_executor``: start the agent with the configuration from the environment."""

from sandbox_executor.app import main

raise SystemExit(main())

"""sandbox-executor: the agent that runs inside every sandbox.

It serves ``GET /health`` and ``POST /execute`` and reports back to the control plane's
``/internal/*`` callbacks. Standard library only: it ships into minimal images and bubblewrap
sandboxes that have no site-packages. Run it with ``python3 -m sandbox_executor`` (a supervisor that
runs and restarts the agent, ``python3 -m sandbox_executor.app``).

Nothing heavy is imported here on purpose: importing the package must stay side-effect free.
"""

__version__ = "1.0.0"

"""`python -m sandboxcp.cli ...`: the same as the `sandboxcp` command."""

import sys

from sandboxcp.cli import main

sys.exit(main())

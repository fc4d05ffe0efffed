#!/usr/bin/env bash
# Install what is missing, then start the local stack: the API on http://127.0.0.1:8000 with real
# bubblewrap sandboxes. Arguments go to `sandboxcp local` (e.g. --port 8001). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec "${PYTHON:-python3}" -m sandboxcp.cli local "$@"

#!/usr/bin/env bash
# Install what is missing, then start the local stack: the API on http://127.0.0.1:8000 with real
# sandboxes (bubblewrap by default). Arguments go to `sandboxcp local` (e.g. --port 8001,
# --runtime docker, ecs, eks or docker-remote). With any of those four (ecs, eks: the stand-ins of
# docs/runtimes-cloud.md; docker-remote: the engine over TCP+TLS, docs/runtimes-docker.md),
# the Docker engine is started and the template images are built first. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [[ " $* " =~ \ --runtime[=\ ](docker|ecs|eks|docker-remote)\  ]]; then  # the stand-ins run on Docker
  ./scripts/start_dockerd.sh
  ./scripts/build_images.sh
fi
exec "${PYTHON:-python3}" -m sandboxcp.cli local "$@"

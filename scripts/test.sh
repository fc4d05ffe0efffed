#!/usr/bin/env bash
# The whole test suite: install what is missing, lint (ruff), type-check (mypy), then pytest
# (unit, functional on moto, infra on the synthesized CDK template, end-to-end on the local stack).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
PY=${PYTHON:-python3}
echo "== ruff"; $PY -m ruff check .
echo "== mypy"; $PY -m mypy layers/python executor functions infra clients/python
echo "== pytest"; $PY -m pytest "$@"

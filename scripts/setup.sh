#!/usr/bin/env bash
# Install everything the local stack and the tests need on a fresh Debian 12 machine (run as root, or
# with sudo available). Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! $PY -c "import sandboxcp, aws_cdk, moto, cdk_nag, ruff" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .sandboxcp-installed ]; then
  echo "setup: pip install -e .[dev]"
  $PY -m pip install -q --disable-pip-version-check -e ./clients/python
  $PY -m pip install -q --disable-pip-version-check -e ".[dev]"
  touch .sandboxcp-installed
fi

if [ -f package.json ] && [ ! -x node_modules/.bin/cdk ]; then
  echo "setup: npm install (CDK CLI)"
  npm install --no-audit --no-fund --silent
fi
echo "setup: done"

#!/usr/bin/env bash
# Start a Docker engine for the docker runtime and its tests. Idempotent: installs docker.io when dockerd
# is missing (apt-get update first), starts dockerd in the background when `docker info` fails, then
# waits until the engine answers (at most 60 s). Run as root (CI does) or with sudo available.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
LOG=${DOCKERD_LOG:-/tmp/dockerd.log}

engine_ok() { $SUDO docker info >/dev/null 2>&1; }

if engine_ok; then
  echo "start_dockerd: engine already running"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  echo "start_dockerd: apt-get install docker.io"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "start_dockerd: starting dockerd (log: $LOG)"
  # A stale pid file from an engine that died (machine reused) makes dockerd refuse to start.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
    $SUDO rm -f /var/run/docker.pid
  fi
  # setsid: the engine must not die with the shell (or pytest session) that started it.
  $SUDO setsid dockerd >"$LOG" 2>&1 < /dev/null &
fi

for _ in $(seq 1 120); do
  if engine_ok; then
    echo "start_dockerd: engine ready ($($SUDO docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  sleep 0.5
done
echo "start_dockerd: the Docker engine did not answer within 60 s; last lines of $LOG:" >&2
tail -n 30 "$LOG" >&2 || true
exit 1

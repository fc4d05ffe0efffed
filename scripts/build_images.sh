#!/usr/bin/env bash
# Build the default template images LOCALLY, without any container registry:
#   sandboxcp/python-basic:latest        Python 3.11 + the executor (+ bash, coreutils for shell code)
#   sandboxcp/python-datascience:latest  the same + numpy and pandas (wheels from PyPI)
#   sandboxcp/nodejs-basic:latest        the same + Node.js (the host's Node 20, or Debian's nodejs)
#
# Each image is a root filesystem assembled from Debian .debs (`apt-get download` + `dpkg -x`, no
# maintainer scripts run), with /etc/passwd and /etc/group for uid/gid 1000 `sandbox`, /workspace,
# /tmp, /run/sandbox and the executor at /opt/sandbox-executor, imported with `docker import`.
# The Dockerfiles in executor/images/<name>/ describe the same images for real deployments (CDK image
# assets built FROM public base images); this script is what local mode, the tests and CI use.
#
# Usage: scripts/build_images.sh [--force] [NAME...]
# Idempotent and fast when nothing changed: every image carries the label sandboxcp.build-hash (a hash
# of the executor source, this script and the recipe); an image whose label matches is left alone.
# Downloads are cached in $SANDBOXCP_IMAGE_CACHE (default /var/cache/sandboxcp-images as root).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

ALL=(python-basic python-datascience nodejs-basic)
FORCE=0
WANTED=()
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    python-basic | python-datascience | nodejs-basic) WANTED+=("$arg") ;;
    *) echo "build_images: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[ ${#WANTED[@]} -gt 0 ] || WANTED=("${ALL[@]}")

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
DOCKER=(docker)
if ! docker info >/dev/null 2>&1; then
  if [ -n "$SUDO" ] && sudo docker info >/dev/null 2>&1; then DOCKER=(sudo docker); else
    echo "build_images: no Docker engine answers: run scripts/start_dockerd.sh first" >&2
    exit 1
  fi
fi

if [ -z "${SANDBOXCP_IMAGE_CACHE:-}" ]; then
  if [ "$(id -u)" -eq 0 ]; then SANDBOXCP_IMAGE_CACHE=/var/cache/sandboxcp-images
  else SANDBOXCP_IMAGE_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sandboxcp-images; fi
fi
CACHE=$SANDBOXCP_IMAGE_CACHE
mkdir -p "$CACHE/debs"
PY=${PYTHON:-python3}

# -- recipes ---------------------------------------------------------------------------------------
# Debian packages of every image (their Depends/Pre-Depends closure is added by executor/images/debs.py).
BASE_DEBS=(python3.11-minimal libpython3.11-stdlib bash coreutils tzdata libgcc-s1)
EXTRA_DEBS_python_datascience=(libstdc++6)  # pandas' C++ extensions
EXTRA_DEBS_nodejs_basic=(libstdc++6)
REQUIREMENTS_datascience=executor/images/python-datascience/requirements.txt

# Node.js for nodejs-basic: the host's Node 20 binary when it has one (NodeSource's build: one static-ish
# binary needing only libc, libstdc++ and libgcc_s), otherwise Debian's nodejs package (Node 18).
node_source() {
  if command -v node >/dev/null 2>&1 && [[ "$(node --version 2>/dev/null)" == v20.* ]]; then
    echo "host $(readlink -f "$(command -v node)") $(node --version)"
  else
    echo "debian nodejs $(apt-cache policy nodejs 2>/dev/null | awk '/Candidate/ {print $2}')"
  fi
}

recipe_hash() {
  local name=$1
  {
    echo "recipe-v1 $name"
    for f in scripts/build_images.sh executor/images/debs.py executor/sandbox_executor/*.py \
      "executor/images/$name"/*; do
      [ -f "$f" ] || continue
      echo "== $f"
      cat "$f"
    done
    [ "$name" != nodejs-basic ] || node_source
  } | sha256sum | cut -c1-16
}

image_hash() {
  "${DOCKER[@]}" image inspect --format '{{ index .Config.Labels "sandboxcp.build-hash" }}' \
    "sandboxcp/$1:latest" 2>/dev/null || true
}

# -- building blocks -------------------------------------------------------------------------------
apt_lists_fresh=0
download_debs() {  # names... -> prints the paths of the cached .debs of their closure
  local listing
  if ! listing=$("$PY" executor/images/debs.py "$@" 2>/dev/null) || [ -z "$listing" ]; then
    if [ $apt_lists_fresh -eq 0 ]; then
      $SUDO apt-get update -qq >&2
      apt_lists_fresh=1
    fi
    listing=$("$PY" executor/images/debs.py "$@")
  fi
  local missing=()
  while read -r name version _arch file; do
    [ -s "$CACHE/debs/$file" ] || missing+=("$name=$version")
  done <<<"$listing"
  if [ ${#missing[@]} -gt 0 ]; then
    echo "build_images: apt-get download ${#missing[@]} packages" >&2
    if ! (cd "$CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "${missing[@]}" >&2); then
      $SUDO apt-get update -qq >&2
      apt_lists_fresh=1
      (cd "$CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "${missing[@]}" >&2)
    fi
  fi
  while read -r _name _version _arch file; do echo "$CACHE/debs/$file"; done <<<"$listing"
}

extract() {  # rootfs deb...
  local root=$1
  shift
  for deb in "$@"; do dpkg-deb -x "$deb" "$root"; done
}

# The parts every image shares: users, directories, loader cache, the executor, precompiled bytecode.
finish_rootfs() {
  local root=$1
  mkdir -p "$root/etc" "$root/opt/sandbox-executor" "$root/run" "$root/proc" "$root/sys" "$root/dev" \
    "$root/root" "$root/var/tmp" "$root/usr/lib/python3/dist-packages"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/bash' 'sandbox:x:1000:1000:sandbox:/workspace:/bin/bash' \
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'sandbox:x:1000:' 'nogroup:x:65534:' >"$root/etc/group"
  printf '%s\n' 'passwd: files' 'group: files' 'shadow: files' 'hosts: files dns' >"$root/etc/nsswitch.conf"
  echo 'include /etc/ld.so.conf.d/*.conf' >"$root/etc/ld.so.conf"
  ln -sfn python3.11 "$root/usr/bin/python3"
  ln -sfn python3.11 "$root/usr/bin/python"
  install -d -m 1777 "$root/tmp"
  chmod 1777 "$root/var/tmp"
  chmod 0700 "$root/root"
  install -d -o 1000 -g 1000 -m 0755 "$root/workspace"
  install -d -o 1000 -g 1000 -m 0700 "$root/run/sandbox"
  : >"$root/run/controlplane.sock"  # mount point of the control plane's socket (local mode)
  rm -rf "$root/opt/sandbox-executor/sandbox_executor"
  mkdir -p "$root/opt/sandbox-executor/sandbox_executor"
  cp executor/sandbox_executor/*.py "$root/opt/sandbox-executor/sandbox_executor/"
  # Documentation and translations are dead weight in a sandbox; copyright files stay.
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
  rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/locale" "$root/usr/share/lintian"
  ldconfig -r "$root"
  # The root filesystem is read-only at run time, so bytecode must be there already or every start
  # recompiles the standard library. unchecked-hash: the image never changes under its .pyc files.
  chroot "$root" /usr/bin/python3.11 -m compileall -q --invalidation-mode unchecked-hash \
    /usr/lib/python3.11 /usr/lib/python3/dist-packages /opt/sandbox-executor >/dev/null
}

import_rootfs() {  # name rootfs hash
  local name=$1 root=$2 hash=$3 old
  old=$("${DOCKER[@]}" image inspect --format '{{.Id}}' "sandboxcp/$name:latest" 2>/dev/null || true)
  # VOLUME as in the Dockerfiles: on Fargate (and the ECS stand-in) task volumes mounted there then start
  # as copies of the image's /workspace (uid 1000) and /tmp (1777), not as root-owned mount points.
  tar --numeric-owner -C "$root" -c . | "${DOCKER[@]}" import \
    --change 'USER 1000:1000' \
    --change 'WORKDIR /workspace' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV HOME=/workspace' \
    --change 'ENV PYTHONPATH=/opt/sandbox-executor' \
    --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
    --change 'EXPOSE 8080/tcp' \
    --change 'VOLUME ["/workspace", "/tmp"]' \
    --change 'ENTRYPOINT ["/usr/bin/python3.11","-P","-m","sandbox_executor"]' \
    --change "LABEL sandboxcp.template=$name" \
    --change "LABEL sandboxcp.build-hash=$hash" \
    - "sandboxcp/$name:latest" >/dev/null
  if [ -n "$old" ]; then "${DOCKER[@]}" image rm "$old" >/dev/null 2>&1 || true; fi
}

# -- main ------------------------------------------------------------------------------------------
exec 9>"$CACHE/build.lock"
flock 9  # two builds at once (tests and a bench) would race on the cache and the tags

todo=()
for name in "${WANTED[@]}"; do
  want=$(recipe_hash "$name")
  if [ $FORCE -eq 0 ] && [ "$(image_hash "$name")" = "$want" ]; then
    echo "build_images: sandboxcp/$name:latest is up to date ($want)"
  else
    todo+=("$name")
  fi
done
[ ${#todo[@]} -gt 0 ] || exit 0

for tool in dpkg-deb apt-get chroot ldconfig sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build_images: $tool is required" >&2; exit 1; }
done
WORK=$(mktemp -d "$CACHE/work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

ms() { echo $(($(date +%s%N) / 1000000)); }
start=$(ms)
mapfile -t base_debs < <(download_debs "${BASE_DEBS[@]}")
extract "$WORK/base" "${base_debs[@]}"

for name in "${todo[@]}"; do
  t0=$(ms)
  hash=$(recipe_hash "$name")
  root="$WORK/$name"
  cp -a "$WORK/base" "$root"
  case "$name" in
    python-datascience)
      mapfile -t debs < <(download_debs "${EXTRA_DEBS_python_datascience[@]}")
      extract "$root" "${debs[@]}"
      "$PY" -m pip install -q --disable-pip-version-check --no-warn-script-location --no-compile \
        --root-user-action=ignore --no-deps \
        --target "$root/usr/lib/python3/dist-packages" --python-version 3.11 --implementation cp \
        --only-binary=:all: -r "$REQUIREMENTS_datascience"
      rm -rf "$root/usr/lib/python3/dist-packages/bin"
      ;;
    nodejs-basic)
      read -r kind node_path _version < <(node_source)
      if [ "$kind" = host ]; then
        mapfile -t debs < <(download_debs "${EXTRA_DEBS_nodejs_basic[@]}")
        extract "$root" "${debs[@]}"
        install -m 0755 "$node_path" "$root/usr/bin/node"
      else
        echo "build_images: no Node 20 on this host; using Debian's nodejs package" >&2
        mapfile -t debs < <(download_debs "${EXTRA_DEBS_nodejs_basic[@]}" libnode108)
        extract "$root" "${debs[@]}"
        # The nodejs binary package itself is pinned to Debian's version (a NodeSource candidate could
        # be listed without a reachable archive).
        ver=$(apt-cache madison nodejs | awk '$3 ~ /deb12/ {print $3; exit}')
        (cd "$CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "nodejs=$ver")
        dpkg-deb -x "$CACHE/debs/nodejs_${ver//:/%3a}_amd64.deb" "$root"
      fi
      ;;
  esac
  finish_rootfs "$root"
  import_rootfs "$name" "$root" "$hash"
  size=$("${DOCKER[@]}" image inspect --format '{{.Size}}' "sandboxcp/$name:latest")
  echo "build_images: built sandboxcp/$name:latest ($hash, $((size / 1000000)) MB) in $(($(ms) - t0)) ms"
  rm -rf "$root"
done
echo "build_images: done in $(($(ms) - start)) ms"

#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, import a base image offline from
# Debian's busybox-static, build the example Dockerfile (example/hello) on it, run it, and show it. Uses a throw-away store unless
# KILN_ROOT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export KILN_ROOT="${KILN_ROOT:-$(mktemp -d /tmp/kiln-main.XXXXXX)}"
kiln() { bin/kiln "$@"; } # as a user runs it
echo "main: store at $KILN_ROOT"

# A root filesystem from Debian's busybox-static (no network registry needed).
work=$(mktemp -d /tmp/kiln-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
bash scripts/busybox-rootfs.sh "$work/rootfs.tar"

echo "main: kiln import (base image busybox:base)"
kiln import -c 'CMD ["sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$work/rootfs.tar" busybox:base

if [ "$(id -u)" -ne 0 ]; then
  echo "main: kiln build and kiln run need root (RUN steps run in runc over overlay mounts); stopping here"
  kiln images
  exit 0
fi

# The example: a two-stage Dockerfile (example/hello) built on that base; its RUN steps run in runc.
echo "main: kiln build -t example/hello:1.0 example/hello"
kiln build --progress plain -t example/hello:1.0 example/hello
echo "main: the same build again: every step comes from the cache"
kiln build --progress plain -t example/hello:1.0 example/hello 2>&1 | grep -c CACHED

kiln tag example/hello:1.0 example/hello:latest
kiln images
kiln history busybox:base
kiln history example/hello:1.0
kiln inspect -f '{{.Id}} {{json .Config.Cmd}} {{.Config.WorkingDir}} {{.Config.User}}' example/hello:1.0

echo "main: save → load round trip"
kiln save -o "$work/images.tar" busybox:base example/hello:1.0
KILN_ROOT="$work/second-store" bin/kiln load -i "$work/images.tar"
KILN_ROOT="$work/second-store" bin/kiln images
kiln system df
kiln system check

echo "main: kiln run --rm example/hello:1.0 (runc, overlay snapshots)"
kiln run --rm example/hello:1.0
kiln run --rm busybox:base sh -c 'echo "busybox says hi from $(hostname)"; exit 3' || echo "main: the container exited with $? (passed through, as docker run does)"

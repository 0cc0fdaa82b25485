#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, import a base image offline from
# Debian's busybox-static, build an example image from it, and show it. Uses a throw-away store unless
# KILN_ROOT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export KILN_ROOT="${KILN_ROOT:-$(mktemp -d /tmp/kiln-main.XXXXXX)}"
kiln() { node bin/kiln "$@"; }
echo "main: store at $KILN_ROOT"

# A root filesystem from Debian's busybox-static (no network registry needed).
work=$(mktemp -d /tmp/kiln-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$work/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/rootfs/etc/group"
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work/rootfs" -cf "$work/rootfs.tar" .

echo "main: kiln import (base image busybox:base)"
kiln import -c 'CMD ["sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$work/rootfs.tar" busybox:base

# An example image: the base root filesystem plus an app file, imported from a directory with its
# own config. (Dockerfile builds arrive with the build work.)
cp -a "$work/rootfs" "$work/app"
mkdir -p "$work/app/srv"
echo 'hello from kiln' > "$work/app/srv/hello.txt"
echo "main: kiln import of an example app directory"
kiln import -c 'WORKDIR /srv' -c 'CMD ["cat", "/srv/hello.txt"]' -c 'LABEL org.example.app=hello' "$work/app" example/hello:1.0

kiln tag example/hello:1.0 example/hello:latest
kiln images
kiln history busybox:base
kiln inspect -f '{{.Id}} {{json .Config.Cmd}} {{.Config.WorkingDir}}' example/hello:1.0

echo "main: save → load round trip"
kiln save -o "$work/images.tar" busybox:base example/hello:1.0
KILN_ROOT="$work/second-store" node bin/kiln load -i "$work/images.tar"
KILN_ROOT="$work/second-store" node bin/kiln images
kiln system df
kiln system check

if [ "$(id -u)" -eq 0 ]; then
  echo "main: kiln run --rm example/hello:1.0 (runc, overlay snapshots)"
  kiln run --rm example/hello:1.0
  kiln run --rm busybox:base sh -c 'echo "busybox says hi from $(hostname)"; exit 3' || echo "main: the container exited with $? (passed through, as docker run does)"
else
  echo "main: kiln run needs root; skipped"
fi

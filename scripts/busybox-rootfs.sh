#!/usr/bin/env bash
# Writes a busybox root filesystem as a plain tar to OUT.tar, from Debian's busybox-static (/bin/busybox,
# or $BUSYBOX): /bin/busybox, every applet as a symlink to it where busybox puts it (--list-full), the
# usual top-level directories (/tmp sticky and world-writable), and an /etc/passwd and /etc/group with
# root and nobody. The one base image of the main job (scripts/main.sh), the benches and the tests.
#
# Reproducible: the same busybox binary gives the same bytes (names sorted, owner 0:0, times 0), so the
# tar's sha256 is the diffID `docker import` and `kiln import` give its layer, on any machine.
set -euo pipefail
out=${1:?usage: scripts/busybox-rootfs.sh OUT.tar}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "busybox-rootfs: $busybox not found; install Debian's busybox-static (scripts/setup.sh does, as root)" >&2; exit 1; }
# A dynamically linked busybox (Debian's busybox, not busybox-static) would not run in the image.
if ldd "$busybox" > /dev/null 2>&1; then
  echo "busybox-rootfs: $busybox is dynamically linked; install Debian's busybox-static" >&2
  exit 1
fi

umask 022
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,dev,etc,proc,root,sbin,sys,tmp,usr/bin,usr/sbin,var}
chmod 1777 "$root/tmp"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list-full); do
  [ "$applet" = bin/busybox ] || ln -s /bin/busybox "$root/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
LC_ALL=C tar --format=gnu --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$root" -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$out"

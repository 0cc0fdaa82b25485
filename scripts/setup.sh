#!/usr/bin/env bash
# Installs what kiln and its tests need on a fresh Debian machine, then builds. Safe to run again:
# it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# skopeo, umoci and docker.io (a real dockerd) check that what kiln writes, other tools read;
# attr gives setfattr for overlay opaque directories; runc (default) and crun run containers;
# libisal-dev is ISA-L, which native/ (built by npm's install step) links for fast gzip at push time;
# ShellCheck checks RUN scripts for kiln lint; chromium, driven headless by playwright-core, opens the
# page kiln analyze --html writes; containernetworking-plugins (bridge, host-local, portmap, loopback,
# firewall) and iptables make containers' bridge networks and publish their ports; docker-compose and
# python3-docker are the clients the API's tests drive; python3-packaging is PEP 440's reference, which
# kiln scan's version order is checked against; debootstrap makes the Debian image kiln sbom's test
# catalogues, and rpm the rpm database of another; build-essential compiles native/sys and native/;
# openssh-client's ssh-agent holds the key files kiln build --ssh is given (and its tests' agent); tini's
# static build is the docker-init of run --init; git fetches the git repositories kiln build takes as a
# context, and zstd makes the zstd context archive its tests send.
debian_packages=(skopeo umoci busybox-static docker.io attr runc crun docker-registry libisal-dev shellcheck chromium containernetworking-plugins iptables docker-compose python3-docker python3-packaging debootstrap rpm build-essential openssh-client tini git zstd)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: not root, so not installing ${missing[*]}; the tests that need them will skip" >&2
  fi
fi

# crun starts a container in about half runc's time, and kiln build picks it where it runs on the host as
# it is; crun 1.8 refuses a hybrid-cgroup host whose hugetlb controller is not mounted as a v1 hierarchy,
# which systemd mounts on most hosts but these machines lack. Mounted here as `kiln build --runtime crun`
# mounts it (src/runtime/runtime.ts); until the next boot.
hugetlb=/sys/fs/cgroup/hugetlb
if [ "$(id -u)" -eq 0 ] && command -v crun > /dev/null && [ -d /sys/fs/cgroup/unified ] && [ -d /sys/fs/cgroup/memory ] && ! mountpoint -q "$hugetlb"; then
  if mkdir -p "$hugetlb" && mount -t cgroup -o hugetlb cgroup "$hugetlb"; then
    echo "setup: mounted the hugetlb cgroup v1 controller at $hugetlb, so that crun runs on this hybrid-cgroup host"
  else
    echo "setup: could not mount the hugetlb cgroup controller at $hugetlb; kiln build runs its RUN steps in runc" >&2
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
elif [ ! -f native/build/Release/igzip.node ] || [ ! -f native/sys/build/Release/sys.node ]; then
  npm run --silent install
fi

echo "setup: build (tsc, then the one-file CLI bin/kiln runs)"
rm -rf dist
npm run --silent build

# `kiln` on the PATH: a link to this checkout's bin/kiln (the last checkout set up wins).
if [ "$(id -u)" -eq 0 ]; then
  ln -sfn "$PWD/bin/kiln" /usr/local/bin/kiln
  echo "setup: kiln is on the PATH: /usr/local/bin/kiln -> $PWD/bin/kiln"
else
  echo "setup: not root, so kiln is not linked into /usr/local/bin; run it as $PWD/bin/kiln, or add $PWD/bin to PATH"
fi

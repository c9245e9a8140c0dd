#!/usr/bin/env bash
# Runtime part (issue 4): system packages for pod VMs, images and the hybrid runc
# runtime, then the guest kernel (cached outside the repo, so a rerun builds nothing).
# Idempotent; runs as root on Debian 12.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)

debs=(
    qemu-system-x86      # the pod VMs (microvm machine)
    linux-source         # our minimal guest kernel is built from it
    linux-image-cloud-amd64  # fallback guest kernel (plus its modules)
    busybox-static       # test images and the debug shell of the guest
    runc                 # hybrid runtime for trusted system pods
    docker-registry      # a real registry on loopback for the tests
    erofs-utils          # read-only rootfs images shared by all pods of an image
    gcc make libc6-dev   # the guest agent, statically linked
    bc bison flex libelf-dev xz-utils kmod  # kernel build
)
missing=()
for p in "${debs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup runtime: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packaged registry starts a system service on install; the tests start their
# own on loopback, so the system one is not wanted.
if systemctl is-enabled docker-registry >/dev/null 2>&1; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# Guest kernel: built once per (config, source) and cached in /var/cache/hypernetes.
[ -x "$top/guest/build-kernel.sh" ] && bash "$top/guest/build-kernel.sh" >/dev/null

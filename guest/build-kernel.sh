#!/usr/bin/env bash
# Builds the Hypernetes guest kernel (an uncompressed vmlinux with a PVH entry
# point) from Debian's linux-source and guest/kernel/hypernetes.config, and
# prints the path of the cached result. The cache key is the hash of the
# config fragment, this script and the source tarball, so a rerun with the
# same inputs builds nothing; the build itself is reproducible (fixed
# timestamp, user and host).
#
# Environment: HYPERNETES_CACHE (default /var/cache/hypernetes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/kernel/hypernetes.config
src=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$src" ]; then
    echo "build-kernel: no /usr/src/linux-source-*.tar.xz (install linux-source)" >&2
    exit 1
fi
cache=${HYPERNETES_CACHE:-/var/cache/hypernetes}/kernel
key=$( { sha256sum "$fragment" "$0" | cut -d' ' -f1; basename "$src"; stat -c '%s %Y' "$src"; } \
    | sha256sum | cut -c1-16)
out=$cache/$key
if [ -f "$out/vmlinux" ]; then
    echo "$out/vmlinux"
    exit 0
fi
if [ -n "${HYPERNETES_KERNEL_NO_BUILD:-}" ]; then
    echo "build-kernel: kernel $key is not built (run scripts/setup)" >&2
    exit 1
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$out/vmlinux" ]; then  # built by whoever held the lock before us
    echo "$out/vmlinux"
    exit 0
fi
work=$(mktemp -d "$cache/.build-$key.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-kernel: building $key from $(basename "$src") in $work (a few minutes)" >&2
tar -C "$work" -xf "$src"
tree=$(echo "$work"/linux-source-*)
export KBUILD_BUILD_TIMESTAMP="1970-01-01 00:00:00 UTC" KBUILD_BUILD_USER=hypernetes \
    KBUILD_BUILD_HOST=hypernetes KBUILD_BUILD_VERSION=1
make -C "$tree" -s ARCH=x86_64 tinyconfig >"$work/build.log" 2>&1
cat "$fragment" >>"$tree/.config"
make -C "$tree" -s ARCH=x86_64 olddefconfig >>"$work/build.log" 2>&1
# Every option asked for must have survived dependency resolution.
bad=0
while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    if ! grep -qxF "$line" "$tree/.config"; then
        echo "build-kernel: option lost in olddefconfig: $line" >&2
        bad=1
    fi
done <"$fragment"
[ "$bad" = 0 ] || exit 1
if ! make -C "$tree" -s ARCH=x86_64 -j"$(nproc)" vmlinux >>"$work/build.log" 2>&1; then
    tail -30 "$work/build.log" >&2
    exit 1
fi
mkdir -p "$work/out"
cp "$tree/vmlinux" "$work/out/vmlinux"
cp "$tree/.config" "$work/out/config"
cp "$tree/include/config/kernel.release" "$work/out/release"
mv "$work/out" "$out"
echo "$out/vmlinux"

#!/usr/bin/env bash
# qemu/systemd-kernel.sh — the kernel of the systemd-booted device (qemu/systemd-root.sh): the
# RPMB variant's kernel (qemu/build-kernel.sh: same Debian linux source, qemu/kernel.config,
# everything built in) plus qemu/kernel-systemd.config (cgroup v2, inotify, autofs, namespaces,
# seccomp, BPF: what systemd and the units' sandboxing need). The busybox device keeps its own
# kernel; the source download is shared with it.
#
# Result: $QEMU_CACHE/rpmb/kernel-systemd/{Image,config,version}. Idempotent (stamp of the
# source version, both fragments and this script); FORCE=1 rebuilds. The tree is removed after.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/rpmb-common.sh"
out=$RC/kernel-systemd
fragments=("$here/kernel.config" "$here/kernel-systemd.config")
STAMP_FILES=("$here/systemd-kernel.sh" "${fragments[@]}")
key=$(stamp_of "$LINUX_SRC_VERSION")
if [ -z "${FORCE:-}" ] && [ -f "$out/Image" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$key" ]; then
    say "systemd kernel up to date ($(cat "$out/version"))"
    exit 0
fi
t0=$(date +%s)
host_tools flex bison bc gcc-aarch64-linux-gnu make xz-utils dpkg-dev
dsc=$(fetch_source linux "$LINUX_SRC_VERSION")
tree=$RC/build/linux-systemd
say "unpacking linux $LINUX_SRC_VERSION for the systemd kernel"
unpack_source "$dsc" "$tree"

kmake() { nice -n 10 make -C "$tree" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- "$@"; }
kmake -s allnoconfig
"$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "${fragments[@]}" > "$tree/merge.log" 2>&1 \
    || { tail -n 20 "$tree/merge.log" >&2; die "merge_config.sh failed"; }
kmake -s olddefconfig
bad=0
while IFS= read -r line; do
    case "$line" in
        CONFIG_*=y) grep -qxF "$line" "$tree/.config" || { echo "  wanted $line, got: $(grep "^${line%%=*}=\|^# ${line%%=*} " "$tree/.config" || echo unset)" >&2; bad=1; } ;;
    esac
done < <(cat "${fragments[@]}")
[ $bad = 0 ] || die "the kernel configuration lost options of ${fragments[*]##*/} (above)"

say "building the systemd kernel Image (nice -n 10 make -j${KERNEL_JOBS:-2}; log $tree.log)"
kmake -j"${KERNEL_JOBS:-2}" Image > "$tree.log" 2>&1 \
    || { tail -n 30 "$tree.log" >&2; die "kernel build failed (log: $tree.log)"; }
mkdir -p "$out"
cp "$tree/arch/arm64/boot/Image" "$out/Image.tmp" && mv "$out/Image.tmp" "$out/Image"
cp "$tree/.config" "$out/config"
echo "linux $LINUX_SRC_VERSION ($(kmake -s kernelrelease)) + kernel-systemd.config" > "$out/version"
[ -n "${KEEP_KERNEL_TREE:-}" ] || rm -rf "$tree"
echo "$key" > "$out/stamp"
timed "systemd kernel $LINUX_SRC_VERSION (cold build, all steps)"

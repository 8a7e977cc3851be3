#!/usr/bin/env bash
# qemu/build-kernel.sh — the kernel of the RPMB variant (QEMU_RPMB=1), built from Debian's linux
# source package ($LINUX_SRC_VERSION, see qemu/rpmb-common.sh) with the small configuration
# qemu/kernel.config merged onto allnoconfig: arm64 virt, PCI, virtio, sdhci-pci + MMC block +
# CONFIG_RPMB (the kernel's RPMB subsystem, through which OP-TEE reaches the eMMC's RPMB), TEE +
# OP-TEE, ext4, dm-verity; everything built in.
#
# Result: $QEMU_CACHE/rpmb/kernel/{Image,config,version}. Idempotent: returns at once when the
# source version, kernel.config and this script are unchanged; FORCE=1 rebuilds. The build tree
# is removed afterwards (KEEP_KERNEL_TREE=1 keeps it in $QEMU_CACHE/rpmb/build/linux).
# `nice -n 10 make -j${KERNEL_JOBS:-2}`: the machine is shared.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/rpmb-common.sh"
out=$RC/kernel
STAMP_FILES=("$here/build-kernel.sh" "$here/kernel.config")
key=$(stamp_of "$LINUX_SRC_VERSION")
if [ -z "${FORCE:-}" ] && [ -f "$out/Image" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$key" ]; then
    say "kernel up to date ($(cat "$out/version"))"
    exit 0
fi
t0=$(date +%s)
host_tools flex bison bc gcc-aarch64-linux-gnu make xz-utils dpkg-dev

dsc=$(fetch_source linux "$LINUX_SRC_VERSION")
tree=$RC/build/linux
say "unpacking linux $LINUX_SRC_VERSION (with Debian's patches)"
unpack_source "$dsc" "$tree"
timed "kernel source download+unpack"

kmake() { nice -n 10 make -C "$tree" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- "$@"; }
kmake -s allnoconfig
"$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$here/kernel.config" > "$tree/merge.log" 2>&1 \
    || { tail -n 20 "$tree/merge.log" >&2; die "merge_config.sh failed"; }
kmake -s olddefconfig
# every option the fragment asks for must have survived olddefconfig (a missing dependency
# silently drops an option otherwise)
bad=0
while IFS= read -r line; do
    case "$line" in
        CONFIG_*=*) grep -qxF "$line" "$tree/.config" || { echo "  wanted $line, got: $(grep "^${line%%=*}=\|^# ${line%%=*} " "$tree/.config" || echo unset)" >&2; bad=1; } ;;
        "# CONFIG_"*" is not set") ! grep -q "^${line:2:$(( ${#line} - 13 ))}=" "$tree/.config" || { echo "  wanted: $line" >&2; bad=1; } ;;
    esac
done < "$here/kernel.config"
[ $bad = 0 ] || die "the kernel configuration lost options of qemu/kernel.config (above)"

say "building the kernel Image (nice -n 10 make -j${KERNEL_JOBS:-2}; log $RC/build/kernel-build.log)"
kmake -j"${KERNEL_JOBS:-2}" Image > "$RC/build/kernel-build.log" 2>&1 \
    || { tail -n 30 "$RC/build/kernel-build.log" >&2; die "kernel build failed (log: $RC/build/kernel-build.log)"; }
mkdir -p "$out"
cp "$tree/arch/arm64/boot/Image" "$out/Image.tmp" && mv "$out/Image.tmp" "$out/Image"
cp "$tree/.config" "$out/config"
echo "linux $LINUX_SRC_VERSION ($(kmake -s kernelrelease))" > "$out/version"
[ -n "${KEEP_KERNEL_TREE:-}" ] || rm -rf "$tree"
echo "$key" > "$out/stamp"
timed "kernel $LINUX_SRC_VERSION (cold build, all steps)"

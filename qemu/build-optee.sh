#!/usr/bin/env bash
# qemu/build-optee.sh — OP-TEE OS for the RPMB variant (QEMU_RPMB=1), built from Debian's
# optee-os source package ($OPTEE_OS_SRC_VERSION, sid: the trixie 4.5 source does not download)
# as Debian builds its QEMUv8 flavour (PLATFORM=vexpress-qemu_armv8a, GICv3, arm64 core, no
# virtualization), plus:
#   CFG_RPMB_FS=y                  secure storage in RPMB; REE-FS integrity anchored in RPMB
#                                  (CFG_REE_FS_INTEGRITY_RPMB follows CFG_RPMB_FS)
#   CFG_RPMB_ANNOUNCE_PROBE_CAP=y  RPMB frames go through the kernel's RPMB subsystem
#   CFG_RPMB_WRITE_KEY=n           OP-TEE never programs the key: the eMMC comes with it (QEMU's
#                                  auth-key=, the factory's job); with =y OP-TEE 4.10 always takes
#                                  the legacy route through tee-supplicant (its RAM emulation)
#   CFG_TEE_CORE_LOG_LEVEL=2       level 3 makes every TA session ~3x slower with RPMB
#   TA_PUBLIC_KEY=<trixie 4.5 optee-os-dev>/keys/default_ta.pem: TAs signed with the 4.5 dev
#                                  kit's key load (Debian's xtest TAs and the project's TA)
# The RPMB key is OP-TEE's own: derived from the HUK and the eMMC's CID (qemu/build-rpmb.sh
# computes the same value for QEMU's auth-key=).
#
# Result: $QEMU_CACHE/rpmb/optee/{bl32.bin,bl32_extra1.bin,bl32_extra2.bin,conf.mk,tee.elf,version}.
# Idempotent (stamp of version, flags, this script); FORCE=1 rebuilds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/rpmb-common.sh"
out=$RC/optee
STAMP_FILES=("$here/build-optee.sh")
key=$(stamp_of "$OPTEE_OS_SRC_VERSION" "${OPTEE_FLAGS[*]}")
if [ -z "${FORCE:-}" ] && [ -f "$out/bl32.bin" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$key" ]; then
    say "optee-os up to date ($(cat "$out/version"))"
    exit 0
fi
t0=$(date +%s)
host_tools python3 python3-cryptography python3-pyelftools device-tree-compiler gcc-aarch64-linux-gnu make
devkit=$(devkit_dir)   # the trixie 4.5 TA dev kit (its key signs every TA we load)
ta_key=$devkit/keys/default_ta.pem
[ -f "$ta_key" ] || die "no $ta_key in the 4.5 TA dev kit"

dsc=$(fetch_source optee-os "$OPTEE_OS_SRC_VERSION")
tree=$RC/build/optee-os
unpack_source "$dsc" "$tree"
# Debian's python3 (with python3-pyelftools, python3-cryptography), not one earlier in PATH
say "building optee-os $OPTEE_OS_SRC_VERSION (RPMB, log level 2; log $RC/build/optee-build.log)"
nice -n 10 make -C "$tree" -j"${KERNEL_JOBS:-2}" CROSS_COMPILE=aarch64-linux-gnu- \
    CROSS_COMPILE64=aarch64-linux-gnu- PYTHON3=/usr/bin/python3 TEE_IMPL_VERSION="$OPTEE_OS_SRC_VERSION" O=out "${OPTEE_FLAGS[@]}" TA_PUBLIC_KEY="$ta_key" \
    > "$RC/build/optee-build.log" 2>&1 \
    || { tail -n 30 "$RC/build/optee-build.log" >&2; die "optee-os build failed (log: $RC/build/optee-build.log)"; }
core=$tree/out/core
conf=$tree/out/conf.mk
for want in CFG_RPMB_FS=y CFG_REE_FS_INTEGRITY_RPMB=y CFG_RPMB_ANNOUNCE_PROBE_CAP=y CFG_TEE_CORE_LOG_LEVEL=2 CFG_ARM_GICV3=y; do
    grep -qx "$want" "$conf" || die "optee-os was built without $want (see $conf)"
done
! grep -qx 'CFG_RPMB_WRITE_KEY=y' "$conf" || die "optee-os was built with CFG_RPMB_WRITE_KEY=y"
rm -rf "$out"; mkdir -p "$out"
cp "$core/tee-header_v2.bin" "$out/bl32.bin"
cp "$core/tee-pager_v2.bin" "$out/bl32_extra1.bin"
cp "$core/tee-pageable_v2.bin" "$out/bl32_extra2.bin"
cp "$conf" "$out/conf.mk"
cp "$core/tee.elf" "$out/tee.elf"   # symbols for OP-TEE's abort/panic dumps (scripts/symbolize.py)
echo "optee-os $OPTEE_OS_SRC_VERSION (TA key: $(sha256sum "$ta_key" | cut -c1-16) = trixie optee-os-dev $(basename "$(dirname "$(dirname "$(dirname "$(dirname "$devkit")")")")"))" > "$out/version"
rm -rf "$tree"
echo "$key" > "$out/stamp"
timed "optee-os $OPTEE_OS_SRC_VERSION"

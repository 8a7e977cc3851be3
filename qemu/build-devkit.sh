#!/usr/bin/env bash
# qemu/build-devkit.sh — the TA dev kit of the OP-TEE that the RPMB variant runs (QEMU_RPMB=1,
# the default device): `make ta_dev_kit` of Debian's optee-os source $OPTEE_OS_SRC_VERSION with
# the configuration of qemu/build-optee.sh, and two changes that only touch the TA libraries:
#   CFLAGS=-ffunction-sections -fdata-sections   each libutee/libutils function in its own
#       section, so that the TA's link (--gc-sections) keeps only those it calls; Debian's dev
#       kit puts a whole source file in one section, and its unused functions (most of the GP
#       API) cost the TA about 28 KB (README, "Size")
#   CFG_TA_BGET_TEST=n   no allocator self-test in libutils
# keys/default_ta.pem is the trixie 4.5 dev kit's key, which qemu/build-optee.sh builds in as
# TA_PUBLIC_KEY: the key the device trusts.
#
# Prints the dev kit's directory ($QEMU_CACHE/rpmb/devkit, what TA_DEV_KIT_DIR names) on stdout.
# ta/build-ta.sh builds against it unless QEMU_RPMB=0 (Debian's OP-TEE 4.5 runs Debian's dev
# kit's TAs: a TA linked with the 4.10 libraries does not run on the 4.5 core). Idempotent
# (stamp of version, flags, this script); FORCE=1 rebuilds. About 30 s on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/rpmb-common.sh"
out=$RC/devkit
mkdir -p "$RC"
exec 8>"$RC/.lock"; flock 8   # the source download is shared with qemu/build-rpmb.sh
host_tools python3 python3-cryptography python3-pyelftools gcc-aarch64-linux-gnu make dpkg-dev
debian_kit=$(devkit_dir)
ta_key=$debian_kit/keys/default_ta.pem
[ -f "$ta_key" ] || die "no $ta_key in the 4.5 TA dev kit"
DEVKIT_FLAGS=("${OPTEE_FLAGS[@]}" CFG_TA_BGET_TEST=n CFG_BUILD_IN_TREE_TA=n
              "CFLAGS=-ffunction-sections -fdata-sections")
STAMP_FILES=("$here/build-devkit.sh" "$ta_key")
key=$(stamp_of "$OPTEE_OS_SRC_VERSION" "${DEVKIT_FLAGS[*]}")
if [ -z "${FORCE:-}" ] && [ -f "$out/mk/ta_dev_kit.mk" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$key" ]; then
    echo "$out"
    exit 0
fi
t0=$(date +%s)
dsc=$(fetch_source optee-os "$OPTEE_OS_SRC_VERSION")
tree=$RC/build/optee-devkit
unpack_source "$dsc" "$tree"
say "building the TA dev kit of optee-os $OPTEE_OS_SRC_VERSION (function sections; log $RC/build/devkit-build.log)"
nice -n 10 make -C "$tree" -j"${KERNEL_JOBS:-2}" CROSS_COMPILE=aarch64-linux-gnu- \
    CROSS_COMPILE64=aarch64-linux-gnu- PYTHON3=/usr/bin/python3 O=out "${DEVKIT_FLAGS[@]}" \
    ta_dev_kit > "$RC/build/devkit-build.log" 2>&1 \
    || { tail -n 30 "$RC/build/devkit-build.log" >&2; die "building the TA dev kit failed (log: $RC/build/devkit-build.log)"; }
kit=$tree/out/export-ta_arm64
for lib in libutee libutils; do
    sections=$(aarch64-linux-gnu-objdump -h "$kit/lib/$lib.a" | grep -c ' \.text\.' || true)
    [ "$sections" -gt 0 ] || die "$kit/lib/$lib.a has no per-function sections (CFLAGS did not reach the TA libraries)"
done
rm -rf "$out.new"
cp -a "$kit" "$out.new"
rm -f "$out.new"/keys/*   # the key the device trusts, not the export's symlinks
cp -L "$ta_key" "$out.new/keys/default_ta.pem"
echo "$key" > "$out.new/stamp"
rm -rf "$out"; mv "$out.new" "$out"
rm -rf "$tree"
timed "TA dev kit (optee-os $OPTEE_OS_SRC_VERSION)" >&2
echo "$out"

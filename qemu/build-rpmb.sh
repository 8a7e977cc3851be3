#!/usr/bin/env bash
# qemu/build-rpmb.sh — the RPMB variant of the QEMU environment (QEMU_RPMB=1), on top of the base
# environment of qemu/build-env.sh (which calls this script when QEMU_RPMB=1):
#   kernel/    qemu/build-kernel.sh  Debian linux source, small config, CONFIG_RPMB=y, all built in
#   optee/     qemu/build-optee.sh   optee-os 4.10 with CFG_RPMB_FS=y, kernel RPMB route, log 2
#   qemu11/    qemu/qemu11-root.sh   QEMU 11 (eMMC with RPMB) from a trixie root, no chroot
#   fw/        the base firmware directory with OP-TEE's bl32* replaced
#   rootfs/ initramfs.cpio.gz   the base initramfs tree without kernel modules (all built in),
#              plus /usr/bin/tee-objects (qemu/tee-objects.c: secure objects from the shell)
#   rpmb-key   the RPMB authentication key the eMMC is created with (QEMU's auth-key=): the
#              key OP-TEE derives itself (CFG_RPMB_TESTKEY=n) from its hardware unique key and
#              the eMMC's CID, computed here the way a factory would program it
#   manifest.txt  the base manifest + the versions and settings of the variant
# all under $QEMU_CACHE/rpmb. qemu/run.sh with QEMU_RPMB=1 boots it with an eMMC image
# (RPMB partition + user area) beside the virtio disks. Idempotent; FORCE=1 rebuilds all.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/rpmb-common.sh"
C=$QEMU_CACHE
mkdir -p "$RC"
exec 8>"$RC/.lock"; flock 8

[ -f "$C/env.stamp" ] && [ -d "$C/rootfs" ] && [ -f "$C/fw/bl1.bin" ] \
    || die "no base environment in $C: run qemu/build-env.sh first"
t_all=$(date +%s)
for step in build-kernel.sh build-optee.sh qemu11-root.sh; do
    "$here/$step"
done

# QEMU's eMMC CID (hw/sd/sd.c, emmc_set_cid: MID 0xaa, CBX 1, OID 'X', PNM "QEMU!!", PRV 1,
# PSN 0xdeadbeef, MDT 2/2006; Linux reports the CRC byte as 0). The guest prints the real one
# (/init: SUIT-INIT: rpmb ... cid=) and the tests compare. PRV and CRC do not enter the key.
: "${EMMC_CID:=aa015851454d55212101deadbeef2900}"
: "${OPTEE_HUK:=00000000000000000000000000000000}"   # OP-TEE's default HUK on QEMU (otp_stubs.c)
: "${RPMB_SIZE:=2097152}"                            # 2 MiB RPMB (multiple of 128 KiB)

STAMP_FILES=("$here/build-rpmb.sh" "$here/rpmb-common.sh" "$here/tee-objects.c" "$C/env.stamp" "$RC/kernel/stamp" "$RC/optee/stamp" "$RC/qemu11/stamp")
key=$(stamp_of "$EMMC_CID" "$OPTEE_HUK" "$RPMB_SIZE")
if [ -z "${FORCE:-}" ] && [ -f "$RC/initramfs.cpio.gz" ] && [ "$(cat "$RC/env.stamp" 2>/dev/null)" = "$key" ]; then
    say "RPMB variant up to date in $RC"
    exit 0
fi

# ---- the RPMB key: OP-TEE's derivation (core/kernel/huk_subkey.c with
# CFG_CORE_HUK_SUBKEY_COMPAT=y, core/tee/tee_rpmb_fs.c): HMAC-SHA256 keyed with the HUK over the
# CID with its PRV (byte 9) and CRC (byte 15) cleared ----
/usr/bin/python3 - "$OPTEE_HUK" "$EMMC_CID" > "$RC/rpmb-key.tmp" <<'PY'
import hashlib, hmac, sys
huk, cid = bytes.fromhex(sys.argv[1]), bytearray(bytes.fromhex(sys.argv[2]))
assert len(huk) == 16 and len(cid) == 16
cid[9] = 0
cid[15] = 0
print(hmac.new(huk, bytes(cid), hashlib.sha256).hexdigest().upper())
PY
mv "$RC/rpmb-key.tmp" "$RC/rpmb-key"
echo "$EMMC_CID" > "$RC/emmc-cid"
echo "$RPMB_SIZE" > "$RC/rpmb-size"

# ---- firmware directory: the base one with the RPMB build of OP-TEE ----
rm -rf "$RC/fw"; cp -a "$C/fw" "$RC/fw"
cp "$RC"/optee/bl32{,_extra1,_extra2}.bin "$RC/fw/"

# ---- initramfs: the base tree; the kernel has everything built in, so no modules ----
R=$RC/rootfs
rm -rf "$R"; cp -a "$C/rootfs" "$R"
rm -f "$R"/usr/lib/modules/*.ko
: > "$R/usr/lib/modules/load-order"
# tee-objects: secure objects from the shell, through xtest's storage TA (qemu/tee-objects.c)
host_tools libc6-dev-arm64-cross
client_dev=$(unpack_deb "$(fetch_debs optee-client-dev:arm64)")
aarch64-linux-gnu-gcc -O2 -Wall -Wextra -Werror -I"$client_dev/usr/include" "$here/tee-objects.c" \
    -o "$R/usr/bin/tee-objects" -L"$R/usr/lib/aarch64-linux-gnu" -l:libteec.so.2 \
    || die "cannot build qemu/tee-objects.c"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 > "$RC/initramfs.cpio.gz.tmp"
mv "$RC/initramfs.cpio.gz.tmp" "$RC/initramfs.cpio.gz"

{
    cat "$C/manifest.txt"
    echo "# RPMB variant (QEMU_RPMB=1), $RC"
    echo "rpmb kernel $(cat "$RC/kernel/version") (config qemu/kernel.config)"
    echo "rpmb optee-os $(cat "$RC/optee/version") CFG_RPMB_FS=y CFG_RPMB_ANNOUNCE_PROBE_CAP=y CFG_RPMB_WRITE_KEY=n CFG_TEE_CORE_LOG_LEVEL=2"
    echo "rpmb qemu $(cat "$RC/qemu11/version")"
    echo "rpmb emmc rpmb-partition-size=$RPMB_SIZE cid=$EMMC_CID auth-key=HMAC-SHA256(HUK=$OPTEE_HUK, CID)"
    echo "rpmb host mmdebstrap $(dpkg-query -W -f='${Version}' mmdebstrap)"
} > "$RC/manifest.txt"
echo "$key" > "$RC/env.stamp"
say "RPMB variant ready in $RC ($(( $(date +%s) - t_all )) s); versions in $RC/manifest.txt"

#!/usr/bin/env bash
# qemu/build-env.sh — assemble the OP-TEE QEMUv8 environment from Debian packages (`make qemu-env`).
#
# Result, all under $QEMU_CACHE (default build/qemu-cache):
#   fw/                 QEMU's working directory: bl1/bl2/bl31 (TF-A built from Debian's
#                       arm-trusted-firmware source), bl32* (optee-os), bl33 (u-boot-qemu),
#                       uboot-env.img (pflash)
#   Image               the kernel (linux-image-*-cloud-arm64)
#   initramfs.cpio.gz   busybox, glibc, libgcc_s, tee-supplicant, libteec, xtest + its TAs,
#                       dmsetup (+ libdevmapper and its libraries, for dm-verity),
#                       kernel modules and qemu/init.sh as /init (TA/agent/scenario are added
#                       per run by qemu/run.sh as a second cpio archive)
#   rootfs/             the unpacked initramfs tree (qemu/run.sh checks added binaries against it)
#   manifest.txt        the versions actually used
# A second run with unchanged inputs returns immediately. REFRESH=1 re-reads the package lists
# (newer versions), FORCE=1 rebuilds everything from the cached downloads.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# QEMU_RPMB=1: the RPMB variant (qemu/build-rpmb.sh) on top of this base environment
if [ "${QEMU_RPMB:-0}" = 1 ]; then
    QEMU_RPMB=0 "$here/build-env.sh"
    exec "$here/build-rpmb.sh"
fi
source "$here/debian.sh"
C=$QEMU_CACHE
mkdir -p "$C"
exec 9>"$C/.lock"; flock 9   # one builder at a time (parallel test runs, make -j)

HOST_PACKAGES=(qemu-system-arm gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu u-boot-tools dpkg-dev
               device-tree-compiler cpio xz-utils gzip make gcc e2fsprogs python3)
TARGET_PACKAGES=(optee-os tee-supplicant libteec2 libckteec0t64 optee-test-qemu busybox-static libc6 libgcc-s1
                 libssl3t64 zlib1g libzstd1
                 dmsetup libdevmapper1.02.1 libselinux1 libudev1 libpcre2-8-0 libcap2)
MODULES=(tee optee virtio_blk failover net_failover virtio_net)   # load order, see init.sh
# device-mapper and dm-verity for the verified boot of the slots: loaded after MODULES when the
# kernel ships them as modules; a kernel with them built in has none of these files.
OPTIONAL_MODULES=(dm-mod dm-bufio reed_solomon dm-verity)

# ---- fast path: nothing changed since the last complete build ----
inputs_key() {
    cat "$here/build-env.sh" "$here/debian.sh" "$here/init.sh" | sha256sum | cut -c1-16
    echo "$DEBIAN_SUITE ${DEBIAN_MIRROR:-}"
}
key=$(inputs_key)
if [ -z "${FORCE:-}${REFRESH:-}" ] && [ -f "$C/env.stamp" ] && [ "$(cat "$C/env.stamp")" = "$key" ] \
   && [ -f "$C/Image" ] && [ -f "$C/initramfs.cpio.gz" ] && [ -f "$C/fw/bl1.bin" ]; then
    say "environment up to date in $C"
    exit 0
fi
start=$(date +%s)

# ---- 1. host tools ----
host_tools "${HOST_PACKAGES[@]}"

# ---- 2. target packages (arm64, trixie) ----
apt_setup
kernel_pkg_file=$C/debs/kernel-package
if [ -n "${REFRESH:-}" ] || [ ! -s "$kernel_pkg_file" ]; then
    # linux-image-cloud-arm64 is a metapackage: its Depends names the ABI package
    kpkg=$(papt apt-cache show --no-all-versions linux-image-cloud-arm64:arm64 \
           | awk -F': ' '/^Depends:/ { print $2; exit }' | tr ',|' '\n\n' \
           | awk '$1 ~ /^linux-image-[0-9]/ { print $1; exit }')
    [ -n "$kpkg" ] || die "cannot resolve the kernel ABI package from linux-image-cloud-arm64's Depends"
    mkdir -p "$C/debs"; echo "$kpkg" > "$kernel_pkg_file"
fi
kpkg=$(cat "$kernel_pkg_file")
if [ -n "${REFRESH:-}" ]; then rm -f "$C/debs/index"; fi   # pick up newer versions

specs=("${TARGET_PACKAGES[@]/%/:arm64}" "$kpkg:arm64" u-boot-qemu:all)
mapfile -t debs < <(fetch_debs "${specs[@]}")
[ ${#debs[@]} = ${#specs[@]} ] || die "package download failed"
declare -A P   # package name -> unpacked directory
for i in "${!specs[@]}"; do
    P[${specs[$i]%%:*}]=$(unpack_deb "${debs[$i]}")
done
K=${P[$kpkg]}

# ---- 3. TF-A from Debian's arm-trusted-firmware source package ----
tfa_ver=$(awk '$1=="arm-trusted-firmware" { print $2 }' "$C/src/version" 2>/dev/null || true)
if [ -z "$tfa_ver" ] || [ ! -f "$C/tfa/bl31.bin" ] || [ -n "${FORCE:-}${REFRESH:-}" ]; then
    rm -rf "$C/src" "$C/tfa"; mkdir -p "$C/src" "$C/tfa"
    say "downloading the arm-trusted-firmware source package"
    (cd "$C/src" && papt apt-get -q source --download-only arm-trusted-firmware >&2) \
        || die "apt-get source arm-trusted-firmware failed"
    dsc=$(ls "$C"/src/arm-trusted-firmware_*.dsc | head -n1)
    tfa_ver=$(awk '/^Version:/ { print $2; exit }' "$dsc")
    (cd "$C/src" && dpkg-source --no-check -x "$dsc" tfa >/dev/null) || die "cannot unpack $dsc"
    say "building TF-A $tfa_ver (PLAT=qemu SPD=opteed, GICv3)"
    make -C "$C/src/tfa" CROSS_COMPILE=aarch64-linux-gnu- PLAT=qemu SPD=opteed \
        BL32_RAM_LOCATION=tdram QEMU_USE_GIC_DRIVER=QEMU_GICV3 DEBUG=0 LOG_LEVEL=40 \
        -j2 all > "$C/src/tfa-build.log" 2>&1 || { tail -n 30 "$C/src/tfa-build.log" >&2; die "TF-A build failed (log: $C/src/tfa-build.log)"; }
    cp "$C"/src/tfa/build/qemu/release/bl{1,2,31}.bin "$C/tfa/"
    echo "arm-trusted-firmware $tfa_ver" > "$C/src/version"
    rm -rf "$C/src/tfa"   # keep the downloaded source, drop the build tree
fi

# ---- 4. firmware directory (QEMU's working directory; BL2 loads files by semihosting) ----
fw=$C/fw
rm -rf "$fw"; mkdir -p "$fw"
cp "$C"/tfa/bl{1,2,31}.bin "$fw/"
optee=${P[optee-os]}/usr/lib/optee/vexpress-qemu_armv8a
[ -f "$optee/tee-header_v2.bin" ] || die "optee-os has no $optee/tee-header_v2.bin"
cp "$optee/tee-header_v2.bin" "$fw/bl32.bin"
cp "$optee/tee-pager_v2.bin" "$fw/bl32_extra1.bin"
cp "$optee/tee-pageable_v2.bin" "$fw/bl32_extra2.bin"
cp "${P[u-boot-qemu]}/usr/lib/u-boot/qemu_arm64/u-boot.bin" "$fw/bl33.bin"
# U-Boot environment: load kernel and initramfs from fw_cfg, away from OP-TEE's shared memory
cat > "$fw/uboot-env.txt" <<'ENV'
arch=arm
cpu=armv8
board=qemu-arm
board_name=qemu-arm
vendor=emulation
baudrate=115200
bootdelay=0
boot_targets=qfw
bootmeths=qfw
bootcmd=bootflow scan -lb
fdt_addr=0x40000000
fdt_high=0xffffffff
initrd_high=0xffffffff
loadaddr=0x40200000
scriptaddr=0x40200000
pxefile_addr_r=0x40300000
kernel_addr_r=0x42200000
ramdisk_addr_r=0x48000000
stdin=serial
stdout=serial
stderr=serial
ENV
mkenvimage -s 0x40000 -o "$fw/uboot-env.img" "$fw/uboot-env.txt"
truncate -s 64M "$fw/uboot-env.img"
rm "$fw/uboot-env.txt"

# ---- 5. kernel and modules ----
image=$(find "$K/boot" -name 'vmlinuz-*' | head -n1)
[ -n "$image" ] || die "no kernel image in $kpkg"
cp "$image" "$C/Image"   # Debian's arm64 vmlinuz is already an uncompressed Image

# ---- 6. initramfs tree ----
R=$C/rootfs
rm -rf "$R"; mkdir -p "$R"/usr/{bin,sbin,lib/aarch64-linux-gnu,lib/modules}
ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"; ln -s usr/lib "$R/lib"
mkdir -p "$R"/{dev,proc,sys,run,tmp,data,slot,media/usb,root,etc/suit-agent,var/lib/optee-client/data}
multiarch=usr/lib/aarch64-linux-gnu

cp "${P[busybox-static]}/usr/bin/busybox" "$R/usr/bin/busybox"
ln -s busybox "$R/usr/bin/sh"   # for #!/bin/sh; init installs the other applet links
# shared libraries (glibc without gconv, and what xtest / the agent need)
for pkg in libc6 libgcc-s1 libteec2 libckteec0t64 libssl3t64 zlib1g libzstd1 \
           libdevmapper1.02.1 libselinux1 libudev1 libpcre2-8-0 libcap2; do
    find "${P[$pkg]}/$multiarch" -maxdepth 1 \( -name '*.so' -o -name '*.so.*' \) \
        -exec cp -a {} "$R/$multiarch/" \;
done
cp -a "${P[libc6]}/usr/lib/ld-linux-aarch64.so.1" "$R/usr/lib/"
# OP-TEE normal world
cp "${P[tee-supplicant]}/usr/sbin/tee-supplicant" "$R/usr/sbin/"
cp "${P[optee-test-qemu]}/usr/bin/xtest" "$R/usr/bin/"
# device-mapper: the boot stage sets up the slots' dm-verity devices with it
cp "${P[dmsetup]}/usr/sbin/dmsetup" "$R/usr/sbin/"
mkdir -p "$R/usr/lib/optee_armtz" "$R/usr/lib/tee-supplicant/plugins"
cp "${P[optee-test-qemu]}"/usr/lib/optee_armtz/*.ta "$R/usr/lib/optee_armtz/"
if [ -d "${P[optee-test-qemu]}/usr/lib/tee-supplicant/plugins" ]; then
    cp -a "${P[optee-test-qemu]}"/usr/lib/tee-supplicant/plugins/. "$R/usr/lib/tee-supplicant/plugins/"
fi
# kernel modules, decompressed (busybox insmod, no modules.dep)
for m in "${MODULES[@]}"; do
    ko=$(find "$K/usr/lib/modules" -name "$m.ko*" | head -n1)
    [ -n "$ko" ] || die "kernel module $m not found in $kpkg"
    case "$ko" in *.xz) xz -dc "$ko" ;; *) cat "$ko" ;; esac > "$R/usr/lib/modules/$m.ko"
done
loaded=("${MODULES[@]}")
for m in "${OPTIONAL_MODULES[@]}"; do
    ko=$(find "$K/usr/lib/modules" -name "$m.ko*" | head -n1)
    if [ -z "$ko" ]; then say "kernel module $m not in $kpkg (built in, or dm-verity unavailable)"; continue; fi
    case "$ko" in *.xz) xz -dc "$ko" ;; *) cat "$ko" ;; esac > "$R/usr/lib/modules/$m.ko"
    loaded+=("$m")
done
echo "${loaded[*]}" > "$R/usr/lib/modules/load-order"
install -m 0755 "$here/init.sh" "$R/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"

# every ELF in the tree must find its shared libraries in the tree
check_needed() {   # ROOT FILE...
    local root=$1 f lib missing=0; shift
    for f in "$@"; do
        for lib in $(aarch64-linux-gnu-readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            if [ ! -e "$root/$multiarch/$lib" ] && [ ! -e "$root/usr/lib/$lib" ]; then
                echo "  $f needs $lib" >&2; missing=1
            fi
        done
    done
    return $missing
}
check_needed "$R" "$R/usr/sbin/tee-supplicant" "$R/usr/bin/xtest" "$R/usr/sbin/dmsetup" "$R"/$multiarch/*.so* \
    || die "shared libraries missing from the initramfs (above)"

say "packing initramfs"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 > "$C/initramfs.cpio.gz.tmp"
mv "$C/initramfs.cpio.gz.tmp" "$C/initramfs.cpio.gz"

# ---- 7. manifest of what was used ----
{
    echo "# OP-TEE QEMUv8 environment — versions used ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo "suite $DEBIAN_SUITE"
    echo "mirror $(debian_mirror)"
    echo "host qemu-system-aarch64 $(dpkg-query -W -f='${Version}' qemu-system-arm)"
    echo "host gcc-aarch64-linux-gnu $(dpkg-query -W -f='${Version}' gcc-aarch64-linux-gnu)"
    echo "source $(cat "$C/src/version")"
    awk '{ printf "package %s %s %s\n", $1, $2, $4 }' "$C/debs/index" | sort
    echo "kernel $(basename "$image") ($kpkg)"
} > "$C/manifest.txt"

echo "$key" > "$C/env.stamp"
say "environment ready in $C ($(( $(date +%s) - start )) s); versions in $C/manifest.txt"

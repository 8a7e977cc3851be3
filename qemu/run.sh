#!/usr/bin/env bash
# qemu/run.sh — boot the OP-TEE QEMUv8 environment once, on persistent disks.
#
#   qemu/run.sh [options]
#     --dir DIR          run directory (default build/qemu-run): disks/, uart0.log, optee.log,
#                        initrd.img live there. Disks that are missing are created:
#                        disks/slot-a.img, slot-b.img (empty ext4), data.img (ext4);
#                        disks/usb.img is attached (serial usb) only if it exists, and so is
#                        disks/root.img (serial root: the systemd device's root file system,
#                        qemu/systemd-root.sh).
#     --script FILE      guest shell script, run by /init as /scenario.sh after boot
#     --add SRC:DEST     put a host file into the guest at DEST (repeatable)
#     --net-port PORT    network: the guest's http://10.0.2.100:8080/ is relayed to
#                        127.0.0.1:PORT on the host (user networking, restrict=on: nothing else)
#     --net-fwd IP:PORT  also relay the guest's http://IP:8080/ to 127.0.0.1:PORT (repeatable;
#                        with --net-port; e.g. a fleet server and a payload server)
#     --timeout SECS     kill QEMU after SECS seconds (default 300)
#     --append ARGS      extra kernel command line
#     --shell            interactive: serial on this terminal, a shell after boot
#     --exec             exec QEMU in the foreground with UART0 on stdout (for the test harness,
#                        which does its own timeouts and log checks); the PID stays QEMU's
# Adds to the guest: the TA(s) $TA_OUT_DIR/*.ta (default build/ta) at /lib/optee_armtz/,
# $AGENT_BIN at /usr/bin/suit-agent, $AGENT_CONFIG (a file: /etc/suit-agent/config.toml; or a
# directory whose files go to /etc/suit-agent/). With both, /init runs `suit-agent boot-check`
# at every boot. Needs `qemu/build-env.sh` first (make qemu-env).
#
# QEMU_RPMB=1 (the default) boots the RPMB variant (qemu/build-rpmb.sh, `make qemu-env`):
# its kernel, initramfs and OP-TEE, QEMU 11 from the trixie root, and an eMMC on sdhci-pci with
# an RPMB partition, disks/emmc.img (the RPMB partition, then a user area of
# EMMC_USER_SIZE=16M; created when missing, kept like the other disks). NO_EMMC=1 boots the
# variant without its eMMC (the image stays; an attack test: RPMB unreachable). QEMU_RPMB=0
# boots the base environment: Debian's OP-TEE without RPMB (TAs built with TA_STORAGE=ree-fs).
#
# Without --exec/--shell: UART0 goes to the terminal and DIR/uart0.log, OP-TEE's secure UART
# to DIR/optee.log; the run stops early on an OP-TEE core abort/panic or a kernel panic.
# Exit status: 0 QEMU ended by itself, 3 abort/panic seen, 124 timeout. QEMU itself always
# exits 0: whether the guest did the right thing is read from the log.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
: "${QEMU_CACHE:=$repo/build/qemu-cache}"
: "${TA_OUT_DIR:=$repo/build/ta}"
: "${SLOT_SIZE:=64M}"
: "${DATA_SIZE:=64M}"
ABORT_RE='Core data-abort|Panic|Kernel panic'
log() { printf '\033[1m[qemu-run]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[qemu-run] error:\033[0m %s\n' "$*" >&2; exit 2; }

dir=$repo/build/qemu-run script="" net_port="" timeout=300 append="" mode=watch
adds=() fwds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=$2; shift ;;
        --script) script=$2; shift ;;
        --add) adds+=("$2"); shift ;;
        --net-port) net_port=$2; shift ;;
        --net-fwd) fwds+=("$2"); shift ;;
        --timeout) timeout=$2; shift ;;
        --append) append=$2; shift ;;
        --shell) mode=shell ;;
        --exec) mode=exec ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
C=$QEMU_CACHE
[ -f "$C/initramfs.cpio.gz" ] && [ -f "$C/fw/bl1.bin" ] || die "no environment in $C: run qemu/build-env.sh (make qemu-env) first"
qemu_bin=qemu-system-aarch64 kernel=$C/Image initramfs=$C/initramfs.cpio.gz fw=$C/fw rootfs=$C/rootfs
if [ "${QEMU_RPMB:-1}" = 1 ]; then
    RC=$C/rpmb
    [ -f "$RC/env.stamp" ] && [ -f "$RC/initramfs.cpio.gz" ] || die "no RPMB variant in $RC: run QEMU_RPMB=1 qemu/build-env.sh (QEMU_RPMB=1 make qemu-env) first"
    qemu_bin=$RC/qemu11/qemu-system-aarch64 kernel=$RC/kernel/Image initramfs=$RC/initramfs.cpio.gz
    fw=$RC/fw rootfs=$RC/rootfs
fi
mkdir -p "$dir/disks"; dir=$(cd "$dir" && pwd)

# ---- persistent disks ----
new_ext4() {   # FILE SIZE LABEL
    truncate -s "$2" "$1"
    mkfs.ext4 -q -F -L "$3" -E root_owner=0:0 "$1" || die "mkfs.ext4 $1 failed"
}
for d in slot-a slot-b data; do
    f=$dir/disks/$d.img
    if [ ! -e "$f" ]; then
        if [ "$d" = data ]; then new_ext4 "$f" "$DATA_SIZE" data; else new_ext4 "$f" "$SLOT_SIZE" "$d"; fi
        log "created $f"
    fi
done
drives=()
for d in slot-a slot-b data usb root; do
    f=$dir/disks/$d.img
    [ -e "$f" ] || continue
    drives+=(-drive "if=none,id=$d,format=raw,file=$f" -device "virtio-blk-pci,drive=$d,serial=$d")
done
if [ "${QEMU_RPMB:-1}" = 1 ] && [ "${NO_EMMC:-0}" = 1 ]; then
    log "booting without the eMMC (NO_EMMC=1): no RPMB"
elif [ "${QEMU_RPMB:-1}" = 1 ]; then
    # eMMC: RPMB partition then user area (no boot partitions); its RPMB key is preset
    # (auth-key=), as a factory programs it: OP-TEE derives the same key and never writes one
    f=$dir/disks/emmc.img rpmb_size=$(cat "$RC/rpmb-size")
    if [ ! -e "$f" ]; then
        truncate -s "$rpmb_size" "$f" && truncate -s "+${EMMC_USER_SIZE:-16M}" "$f" || die "cannot create $f"
        log "created $f (RPMB $rpmb_size bytes + user area ${EMMC_USER_SIZE:-16M})"
    fi
    drives+=(-drive "if=none,id=emmc,format=raw,file=$f" -device sdhci-pci
             -device "emmc,drive=emmc,rpmb-partition-size=$rpmb_size,auth-key=$(cat "$RC/rpmb-key")")
fi

# ---- initramfs: the cached base archive + a small per-run archive ----
over=$dir/overlay
rm -rf "$over"; mkdir -p "$over"
put() {   # SRC DEST [MODE]
    [ -e "$1" ] || die "no such file: $1"
    mkdir -p "$over/$(dirname "$2")"
    cp -L "$1" "$over/$2"; chmod "${3:-0644}" "$over/$2"
}
shopt -s nullglob
for ta in "$TA_OUT_DIR"/*.ta; do put "$ta" "usr/lib/optee_armtz/$(basename "$ta")"; done
shopt -u nullglob
if [ -n "${AGENT_BIN:-}" ]; then
    put "$AGENT_BIN" usr/bin/suit-agent 0755
    needs=$(aarch64-linux-gnu-readelf -d "$AGENT_BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    for lib in $needs; do
        [ -e "$rootfs/usr/lib/aarch64-linux-gnu/$lib" ] || die "$AGENT_BIN needs $lib, which the image does not have (add its package in qemu/build-env.sh)"
    done
fi
if [ -n "${AGENT_CONFIG:-}" ]; then
    if [ -d "$AGENT_CONFIG" ]; then
        for f in "$AGENT_CONFIG"/*; do put "$f" "etc/suit-agent/$(basename "$f")"; done
    else
        put "$AGENT_CONFIG" etc/suit-agent/config.toml
    fi
fi
[ -n "$script" ] && put "$script" scenario.sh 0755
for a in "${adds[@]}"; do put "${a%%:*}" "${a#*:}" "$( [ -x "${a%%:*}" ] && echo 0755 || echo 0644)"; done
# the kernel accepts concatenated cpio archives; each must start 4-byte aligned
cp "$initramfs" "$dir/initrd.img"
truncate -s %4 "$dir/initrd.img"
(cd "$over" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >> "$dir/initrd.img"

# ---- QEMU ----
net=(-nic none)
if [ -n "$net_port" ]; then
    py=python3; [ -x /usr/bin/python3 ] && py=/usr/bin/python3
    netdev="user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:$py $here/relay.py $net_port"
    for f in "${fwds[@]}"; do netdev="$netdev,guestfwd=tcp:${f%%:*}:8080-cmd:$py $here/relay.py ${f#*:}"; done
    net=(-netdev "$netdev" -device virtio-net-pci,netdev=n0,romfile=)
fi
cmdline="console=ttyAMA0 panic=-1 quiet $append"
[ "$mode" = shell ] && cmdline="$cmdline suit.shell"
qemu=("$qemu_bin" -nographic -monitor none
      -machine virt,secure=on,acpi=off,gic-version=3 -cpu cortex-a57 -smp 2 -m 1024
      -bios bl1.bin -semihosting-config enable=on,target=native
      -kernel "$kernel" -initrd "$dir/initrd.img" -append "$cmdline"
      -serial stdio -serial "file:$dir/optee.log" -no-reboot
      -drive "if=pflash,unit=1,format=raw,readonly=on,file=$fw/uboot-env.img"
      "${drives[@]}" "${net[@]}")
cd "$fw"   # BL2 loads bl31/bl32/bl33 from QEMU's working directory by semihosting
case "$mode" in
    exec)  exec "${qemu[@]}" ;;
    shell) exec timeout --foreground "$timeout" "${qemu[@]}" ;;
esac

: > "$dir/uart0.log"
start=$(date +%s)
"${qemu[@]}" < /dev/null > "$dir/uart0.log" 2>&1 &
qpid=$!
tail -n +1 -f --pid=$qpid "$dir/uart0.log" &
status=0
while kill -0 $qpid 2>/dev/null; do
    if grep -aqE "$ABORT_RE" "$dir/uart0.log" "$dir/optee.log" 2>/dev/null; then
        sleep 0.5; kill -9 $qpid 2>/dev/null || true; status=3
        log "stopped: $(grep -ahE "$ABORT_RE" "$dir/uart0.log" "$dir/optee.log" | head -n1)"
        break
    fi
    if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then
        kill -9 $qpid 2>/dev/null || true; status=124
        log "stopped: timeout after $timeout s"
        break
    fi
    sleep 0.2
done
wait $qpid 2>/dev/null || true
sleep 0.1
if [ $status = 0 ] && grep -aqE "$ABORT_RE" "$dir/uart0.log" "$dir/optee.log" 2>/dev/null; then
    status=3; log "abort/panic: $(grep -ahE "$ABORT_RE" "$dir/uart0.log" "$dir/optee.log" | head -n1)"
fi
log "QEMU ended after $(( $(date +%s) - start )) s; logs: $dir/uart0.log (normal world), $dir/optee.log (OP-TEE)"
exit $status

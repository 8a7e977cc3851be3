#!/usr/bin/env bash
# qemu/systemd-root.sh — the systemd-booted QEMU device: a Debian trixie arm64 root with
# systemd as init, booted on the project's stack (TF-A, OP-TEE with RPMB, U-Boot, the RPMB
# variant's kernel) behind the same verified-boot initramfs as the busybox device.
#
#   qemu/systemd-root.sh base
#       the cached root: mmdebstrap (--mode=root --variant=apt --architectures=arm64) with
#       systemd-sysv, udev, tee-supplicant, ... and the QEMU device's own units (below), as
#       $QEMU_CACHE/systemd/root.tar; keyed by the package list, the mirror and the functions
#       that make it (not the rest of this script: the device's files are per run, so changing
#       them does not cost a rebuild; FORCE=1 rebuilds). Cold: 8 to 40 min (dpkg under
#       qemu-user; the longer on a busy machine).
#   qemu/systemd-root.sh image --out IMG --deb FILE... [--config FILE] [--add SRC:DEST]...
#       per run (never cached): a copy of the cached root, the device's own files (below), the
#       packages installed with trixie's own dpkg in a chroot under qemu-user (their maintainer
#       scripts run: the postinst enables the agent's units), the agent's configuration, extra
#       files; then an ext4 image.
#   qemu/systemd-root.sh init --out FILE
#       the initramfs's /init for this device: qemu/init.sh up to the boot check (disks, data
#       disk, TEE, the A/B boot decision verified through the TA and dm-verity, network), then
#       a hand-over to systemd on the root disk (switch_root), which runs the boot check and
#       the daemon as units.
#
# Foreign arm64 binaries need binfmt_misc: it is mounted and qemu-user-static's aarch64 entry
# registered (flags POF) for the build only, and both are undone afterwards, on failure and on
# a signal too (the registration is global; an entry someone else registered is used and left
# alone; $QEMU_CACHE/systemd/binfmt.lock keeps two runs of this script from overlapping).
#
# The device's own units in the root (written per run, by image):
#   suit-qemu-net.service    lo + eth0 10.0.2.15/24 (the harness's relay is 10.0.2.100:8080)
#   suit-qemu-app.service    /slot/app/start of the verified slot, after the boot check
#   suit-qemu-ready.service  after multi-user.target: "SUIT-SYSTEMD: multi-user ..." with the
#                            boot time (uptime and systemd-analyze), then /scenario.sh if any
# and /etc/fstab (the data disk, OP-TEE's REE-FS directory bound from it), journald forwarding
# to the console (the harness reads the agent's log there), no getty on the serial console.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/debian.sh"
: "${QEMU_CACHE:=$(dirname "$here")/build/qemu-cache}"
out_dir=$QEMU_CACHE/systemd
PACKAGES=systemd-sysv,udev,kmod,tee-supplicant,libteec2,iproute2,procps,e2fsprogs

binfmt_mounted="" binfmt_registered=""
binfmt_on() {
    host_tools qemu-user-static
    if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
        binfmt_mounted=1
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        local f=/usr/share/binfmts/qemu-aarch64 magic mask
        magic=$(sed -n 's/^magic //p' "$f") mask=$(sed -n 's/^mask //p' "$f")
        [ -n "$magic" ] && [ -n "$mask" ] || die "no aarch64 magic in $f (qemu-user-static)"
        echo ":qemu-aarch64:M:0:$magic:$mask:/usr/bin/qemu-aarch64-static:POF" > /proc/sys/fs/binfmt_misc/register \
            || die "cannot register the aarch64 binfmt entry"
        binfmt_registered=1
    fi
}
binfmt_off() {
    if [ -n "$binfmt_registered" ]; then echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64 || true; fi
    if [ -n "$binfmt_mounted" ]; then umount /proc/sys/fs/binfmt_misc || true; fi
    binfmt_registered="" binfmt_mounted=""
}
# bash runs no EXIT trap when a signal kills it: exit instead, so that the EXIT traps below
# undo binfmt_misc on Ctrl-C or a harness's kill too
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# The QEMU device's files in the root (per run, before the packages).
device_files() {   # DIR
    local d=$1
    mkdir -p "$d/etc/systemd/system" "$d/etc/systemd/journald.conf.d" "$d/data" "$d/slot" "$d/media/usb"
    cat > "$d/etc/fstab" <<'EOF'
# The QEMU device (qemu/systemd-root.sh). The initramfs mounted the data disk and the verified
# slot (/slot, dm-verity) before handing over; they are listed so that units can order on them.
/dev/disk/by-id/virtio-data  /data  ext4  noatime  0  0
/data/tee  /var/lib/optee-client/data/tee  none  bind,x-systemd.requires=/data  0  0
EOF
    cat > "$d/etc/systemd/journald.conf.d/suit-qemu.conf" <<'EOF'
# The harness reads the units' output on the serial console.
[Journal]
Storage=volatile
ForwardToConsole=yes
MaxLevelConsole=info
EOF
    cat > "$d/etc/systemd/system/suit-qemu-net.service" <<'EOF'
[Unit]
Description=QEMU device network (eth0 10.0.2.15, the harness's relay at 10.0.2.100)
Before=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip link set lo up
ExecStart=-/usr/sbin/ip addr add 10.0.2.15/24 dev eth0
ExecStart=-/usr/sbin/ip link set eth0 up

[Install]
WantedBy=network-online.target
EOF
    cat > "$d/etc/systemd/system/suit-qemu-app.service" <<'EOF'
[Unit]
Description=The verified slot's application (/slot/app/start)
After=suit-agent-boot-check.service
ConditionPathExists=/slot/app/start

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/slot/app/start
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
EOF
    cat > "$d/etc/systemd/system/suit-qemu-ready.service" <<'EOF'
[Unit]
Description=QEMU device: boot time to multi-user, then the run's scenario
After=multi-user.target

[Service]
# simple, not oneshot: the start-up finishes (systemd-analyze time) while the scenario runs
Type=simple
ExecStart=/usr/lib/suit-qemu/ready
StandardOutput=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
EOF
    mkdir -p "$d/usr/lib/suit-qemu"
    cat > "$d/usr/lib/suit-qemu/ready" <<'EOF'
#!/bin/sh
# multi-user.target is reached: the boot time, then the run's scenario (if any).
up=$(cut -d' ' -f1 /proc/uptime)
echo "SUIT-SYSTEMD: multi-user reached (uptime $up s)"
echo "SUIT-MEASURE: systemd_boot_s=$up"
timeout 60 systemctl is-system-running --wait > /dev/null 2>&1
echo "SUIT-SYSTEMD: $(systemd-analyze time 2>&1 | head -n1)"
failed=$(systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')
echo "SUIT-SYSTEMD: failed units: ${failed:-none}"
if [ -f /scenario.sh ]; then
    echo "SUIT-SCENARIO: start"
    (cd /root && sh /scenario.sh); rc=$?
    echo "SUIT-SCENARIO: exit $rc"
fi
EOF
    chmod 0755 "$d/usr/lib/suit-qemu/ready"
}

cmd_base() {
    local mirror key root_tar work t0
    mirror=$(debian_mirror)
    key=$( { printf '%s\n' "$PACKAGES" "$mirror"; declare -f cmd_base binfmt_on; } | sha256sum | cut -c1-16)
    root_tar=$out_dir/root.tar
    if [ -z "${FORCE:-}" ] && [ -f "$root_tar" ] && [ "$(cat "$out_dir/stamp" 2>/dev/null)" = "$key" ]; then
        say "systemd root up to date ($(head -n1 "$out_dir/version"))"
        return 0
    fi
    t0=$(date +%s)
    host_tools mmdebstrap arch-test qemu-user-static e2fsprogs
    mkdir -p "$out_dir"
    work=$(mktemp -d "$out_dir/base.XXXXXX")
    trap "binfmt_off; rm -rf '$work'" EXIT
    binfmt_on
    say "making the trixie arm64 systemd root with mmdebstrap (8 to 40 min; log $out_dir/mmdebstrap.log)"
    nice -n 10 mmdebstrap --mode=root --variant=apt --architectures=arm64 \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='echo suit-qemu > "$1/etc/hostname"' \
        --customize-hook="chroot \"\$1\" dpkg-query -W -f='\${Package} \${Version}\n' > '$work/versions.txt'" \
        trixie "$work/root.tar" "deb $mirror trixie main" \
        > "$out_dir/mmdebstrap.log" 2>&1 \
        || { tail -n 30 "$out_dir/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $out_dir/mmdebstrap.log)"; }
    binfmt_off
    mv "$work/root.tar" "$root_tar"
    {
        echo "trixie arm64, $(wc -l < "$work/versions.txt") packages, $(( $(stat -c %s "$root_tar") / 1048576 )) MiB tar; mirror $mirror"
        echo "systemd $(awk '$1 == "systemd" { print $2 }' "$work/versions.txt"), tee-supplicant $(awk '$1 == "tee-supplicant" { print $2 }' "$work/versions.txt")"
        cat "$work/versions.txt"
    } > "$out_dir/version"
    echo "$key" > "$out_dir/stamp"
    mkdir -p "$QEMU_CACHE/rpmb"
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) systemd root (mmdebstrap) $(( $(date +%s) - t0 ))s" >> "$QEMU_CACHE/rpmb/timings.log"
    say "systemd root done in $(( $(date +%s) - t0 )) s: $(head -n1 "$out_dir/version")"
}

cmd_image() {
    local img="" config="" debs=() adds=() work root t0 size a
    while [ $# -gt 0 ]; do
        case "$1" in
            --out) img=$2; shift ;;
            --deb) debs+=("$2"); shift ;;
            --config) config=$2; shift ;;
            --add) adds+=("$2"); shift ;;
            *) die "image: unknown option $1" ;;
        esac
        shift
    done
    [ -n "$img" ] || die "image: --out IMG is required"
    [ -f "$out_dir/root.tar" ] || die "no cached systemd root: run qemu/systemd-root.sh base first"
    t0=$(date +%s)
    work=$(mktemp -d "$(dirname "$img")/.root.XXXXXX")
    trap "binfmt_off; rm -rf '$work'" EXIT
    root=$work/root
    mkdir -p "$root"
    tar -C "$root" -xpf "$out_dir/root.tar" || die "cannot unpack $out_dir/root.tar"
    device_files "$root"
    binfmt_on
    # the serial console is the harness's channel: no login prompt (its terminal queries and
    # prompt land in the middle of the marker lines)
    { chroot "$root" systemctl enable suit-qemu-net.service suit-qemu-app.service suit-qemu-ready.service \
        && chroot "$root" systemctl mask serial-getty@ttyAMA0.service; } \
        > "$work/enable.log" 2>&1 || { cat "$work/enable.log" >&2; die "cannot enable the device's units"; }
    if [ ${#debs[@]} -gt 0 ]; then
        mkdir -p "$root/tmp/debs"
        cp "${debs[@]}" "$root/tmp/debs/"
        # named one by one: a glob would be expanded on the host, not in the chroot
        local in_root=()
        for a in "${debs[@]}"; do in_root+=("/tmp/debs/$(basename "$a")"); done
        chroot "$root" dpkg -i "${in_root[@]}" > "$work/dpkg.log" 2>&1 \
            || { cat "$work/dpkg.log" >&2; die "dpkg -i in the root failed"; }
        rm -rf "$root/tmp/debs"
        say "installed with dpkg: $(cd "$root" && for d in "${debs[@]}"; do dpkg-deb -f "$d" Package Version | tr '\n' ' '; done)"
    fi
    binfmt_off
    if [ -n "$config" ]; then
        install -D -m 0600 "$config" "$root/etc/suit-agent/config.toml"
    fi
    for a in "${adds[@]}"; do
        install -D -m "$( [ -x "${a%%:*}" ] && echo 0755 || echo 0644)" "${a%%:*}" "$root/${a#*:}"
    done
    size=$(( $(du -sm "$root" | cut -f1) * 13 / 10 + 64 ))
    rm -f "$img"
    truncate -s "${size}M" "$img"
    mkfs.ext4 -q -F -L root -d "$root" "$img" || die "mkfs.ext4 -d failed"
    say "root image $img (${size} MiB) in $(( $(date +%s) - t0 )) s"
}

cmd_init() {
    local out=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --out) out=$2; shift ;;
            *) die "init: unknown option $1" ;;
        esac
        shift
    done
    [ -n "$out" ] || die "init: --out FILE is required"
    grep -q "^# ---- the update agent's boot check" "$here/init.sh" \
        || die "qemu/init.sh has no boot-check section to hand over before"
    {
        sed "/^# ---- the update agent's boot check/,\$d" "$here/init.sh"
        cat "$here/systemd-handover.sh"
    } > "$out"
    chmod 0755 "$out"
}

# One user of binfmt_misc at a time (the registration is global, and undone by whoever made
# it): base and image wait for each other, across worktrees sharing QEMU_CACHE too; a second
# base waits for the first and then finds the root up to date.
lock_binfmt() {
    mkdir -p "$out_dir"
    exec {lock_fd}> "$out_dir/binfmt.lock"
    flock -n "$lock_fd" || { say "waiting for another qemu/systemd-root.sh ($out_dir/binfmt.lock)"; flock "$lock_fd"; }
}

case "${1:-}" in
    base) shift; lock_binfmt; cmd_base "$@" ;;
    image) shift; lock_binfmt; cmd_image "$@" ;;
    init) shift; cmd_init "$@" ;;
    *) die "usage: qemu/systemd-root.sh base | image --out IMG --deb FILE... [--config FILE] [--add SRC:DEST]... | init --out FILE" ;;
esac

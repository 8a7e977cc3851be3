#!/bin/sh
# qemu/init.sh — /init of the QEMU test image (busybox sh, PID 1).
#
# Brings up the guest and plays the bootloader's role for the A/B slots with RAUC semantics:
#   1. mounts /dev, /proc, /sys, /run, /tmp; loads the kernel modules (virtio disks, net, TEE);
#   2. finds the disks by virtio serial (slot-a, slot-b, data, usb) and links them as
#      /dev/disk/by-id/virtio-<serial>;
#   3. mounts the data disk (ext4) at /data; OP-TEE's REE-FS secure storage
#      /var/lib/optee-client/data/tee lives on it (/data/tee, bind-mounted), as does the agent's
#      state /data/suit-agent (with staging/) and the boot state /data/boot/bootstate;
#   4. starts tee-supplicant (after /data is mounted: secure storage lives there);
#   5. boot decision from /data/boot/bootstate (lines BOOT_ORDER=A B, BOOT_A_LEFT=3,
#      BOOT_B_LEFT=3), RAUC semantics: the slots of BOOT_ORDER with LEFT > 0 in that order (if
#      none is left, both are reset to 3 first), then the other slot as a fallback. Verified
#      boot: each candidate is asked of the TA (`suit-agent boot-verify --slot X`, BOOT_VERIFY)
#      and mapped through dm-verity with the TA's root hash; its application files are read
#      through it (a tampered block fails there). The first that passes is booted: its LEFT is
#      decremented (file rewritten atomically), the slot goes to /run/suit/booted-slot and the
#      verified device is mounted read-only at /slot. A refused or failing slot is never
#      mounted otherwise. No slot passes: "SUIT-BOOT: recovery: <why>", no application runs.
#      (An image without the agent — the harness's own checks — mounts slots unverified and
#      says so.) Then lo and eth0 (10.0.2.15) are configured,
#   6. when the update agent is installed (/usr/bin/suit-agent and /etc/suit-agent/config.toml),
#      runs `suit-agent boot-check` as the init system's oneshot unit would: it confirms a
#      healthy trial boot, rolls back after a failed one, marks an ordinary boot good; if it
#      fails (e.g. the trial's health check), the device reboots: this run ends here and the
#      boot state (the agent marked the slot bad) decides the next boot;
#   7. runs /slot/app/start if it exists, then /scenario.sh if the run has one, then powers off.
# Every step prints a line starting with "SUIT-" on the console; the test harness reads them.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
/usr/bin/busybox mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
/usr/bin/busybox mount -t proc proc /proc
/usr/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/suit /dev/disk/by-id

say() { echo "SUIT-INIT: $*"; }
boot() { echo "SUIT-BOOT: $*"; }
finish() {
    sync
    umount /slot 2>/dev/null
    dmsetup remove_all 2>/dev/null
    umount /media/usb 2>/dev/null
    umount /var/lib/optee-client/data/tee 2>/dev/null
    umount /data 2>/dev/null
    echo "SUIT-POWEROFF"
    poweroff -f
    sleep 5
}
fatal() { echo "SUIT-INIT-FATAL: $*"; finish; }
cmdline=$(cat /proc/cmdline)
say "start (kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime) s)"

# ---- modules ----
for m in $(cat /lib/modules/load-order); do
    insmod "/lib/modules/$m.ko" || fatal "insmod $m failed"
done
# device-mapper without udev: libdevmapper creates the /dev/mapper nodes itself
export DM_DISABLE_UDEV=1
if dmsetup targets 2>/dev/null | grep -q '^verity'; then
    say "dm-verity available ($(dmsetup targets | awk '$1 == "verity" { print $1, $2 }'))"
else
    say "WARNING: no dm-verity target in this kernel: verified slots cannot be mounted"
fi

# ---- disks by serial ----
i=0
while [ -z "$(ls /sys/block | grep '^vd')" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
disk() { [ -e "/dev/disk/by-id/virtio-$1" ] && readlink -f "/dev/disk/by-id/virtio-$1"; }
for b in /sys/block/vd*; do
    [ -e "$b" ] || continue
    serial=$(cat "$b/serial" 2>/dev/null)
    [ -n "$serial" ] && ln -sf "/dev/${b##*/}" "/dev/disk/by-id/virtio-$serial"
    say "disk /dev/${b##*/} serial=${serial:-none} size=$(( $(cat "$b/size") / 2048 )) MiB"
done

# ---- data disk ----
if data=$(disk data); then
    mount -t ext4 -o noatime "$data" /data || fatal "cannot mount the data disk $data (ext4 expected; qemu/run.sh creates it)"
    say "data disk $data mounted at /data"
else
    mount -t tmpfs tmpfs /data
    say "WARNING: no data disk (serial=data): /data is a tmpfs, nothing persists"
fi
mkdir -p /data/tee /data/suit-agent/staging /data/boot /var/lib/optee-client/data/tee
mount -o bind /data/tee /var/lib/optee-client/data/tee || fatal "cannot bind /data/tee"

# ---- TEE ----
i=0
while [ ! -e /dev/teepriv0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -e /dev/teepriv0 ] || fatal "no /dev/teepriv0: OP-TEE driver did not probe (see the secure UART log)"
# RPMB variant: OP-TEE reaches RPMB through the kernel's RPMB subsystem (routing model "kernel",
# not "user" = through tee-supplicant); wait for the eMMC's RPMB device and report it
if [ "$(cat /sys/class/tee/tee0/rpmb_routing_model 2>/dev/null)" = kernel ]; then
    i=0
    while [ -z "$(ls /sys/class/rpmb 2>/dev/null)" ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
    say "rpmb routing=kernel devices=$(ls /sys/class/rpmb 2>/dev/null | tr '\n' ' ')cid=$(cat /sys/bus/mmc/devices/*/cid 2>/dev/null | head -n1)"
fi
tee-supplicant -d || fatal "tee-supplicant did not start"
say "tee-supplicant started (secure storage on /data/tee)"

# ---- boot decision (RAUC semantics), verified through the TA ----
BS=/data/boot/bootstate
BOOT_ORDER="A B"; BOOT_A_LEFT=3; BOOT_B_LEFT=3; extra=""
write_bootstate() {
    {
        echo "BOOT_ORDER=$BOOT_ORDER"
        echo "BOOT_A_LEFT=$BOOT_A_LEFT"
        echo "BOOT_B_LEFT=$BOOT_B_LEFT"
        if [ -n "$extra" ]; then printf '%s\n' "$extra"; fi
    } > "$BS.tmp" && sync && mv "$BS.tmp" "$BS" && sync
}
is_count() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
if [ -f "$BS" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        key=${line%%=*}; val=${line#*=}
        val=$(echo "$val" | tr -d '"'"'")
        case "$key" in
            BOOT_ORDER) BOOT_ORDER=$val ;;
            BOOT_A_LEFT) if is_count "$val"; then BOOT_A_LEFT=$val; else boot "bad BOOT_A_LEFT='$val', using 0"; BOOT_A_LEFT=0; fi ;;
            BOOT_B_LEFT) if is_count "$val"; then BOOT_B_LEFT=$val; else boot "bad BOOT_B_LEFT='$val', using 0"; BOOT_B_LEFT=0; fi ;;
            '') ;;
            *) extra="${extra:+$extra
}$line" ;;
        esac
    done < "$BS"
    boot "state BOOT_ORDER=\"$BOOT_ORDER\" BOOT_A_LEFT=$BOOT_A_LEFT BOOT_B_LEFT=$BOOT_B_LEFT"
else
    write_bootstate || fatal "cannot write $BS"
    boot "created $BS with defaults BOOT_ORDER=\"A B\" BOOT_A_LEFT=3 BOOT_B_LEFT=3"
fi
order=""
for s in $BOOT_ORDER; do
    case "$s" in A|B) order="$order $s" ;; *) boot "ignoring unknown slot '$s' in BOOT_ORDER" ;; esac
done
[ -n "$order" ] || { boot "BOOT_ORDER has no valid slot, using \"A B\""; order=" A B"; }
candidates() {   # the slots of BOOT_ORDER with tries left, then the others (fallback)
    for s in $order; do
        eval left=\$BOOT_${s}_LEFT
        if [ "$left" -gt 0 ]; then echo "$s"; else boot "slot $s skipped (BOOT_${s}_LEFT=0)" >&2; fi
    done
    for s in A B; do
        case " $order " in *" $s "*) eval left=\$BOOT_${s}_LEFT; [ "$left" -gt 0 ] || echo "$s" ;; *) echo "$s" ;; esac
    done
}
verified=""
if [ -x /usr/bin/suit-agent ] && [ -f /etc/suit-agent/config.toml ]; then verified=1; fi
# verify SLOT: the TA's approval, dm-verity with its root, the application read through it;
# on success the verified device is mounted at /slot. Prints why not otherwise.
verify() {
    s=$1; name=suit-slot-$(echo "$s" | tr AB ab); t0=$(cut -d' ' -f1 /proc/uptime)
    if ! table=$(suit-agent boot-verify --slot "$s" 2>/tmp/boot-verify.err); then
        why=$(sed -n 's/^suit-agent: error \[[a-z]*\]: //p' /tmp/boot-verify.err | tail -n 1)
        boot "slot $s refused by the TA: ${why:-$(tail -n 1 /tmp/boot-verify.err)}"
        return 1
    fi
    boot "slot $s approved by the TA: $(sed -n 's/^suit-agent: slot [AB] approved by the TA: //p' /tmp/boot-verify.err)"
    if ! dmsetup create --readonly "$name" --table "$table" 2>/tmp/dmsetup.err; then
        boot "slot $s: dm-verity setup failed: $(tail -n 1 /tmp/dmsetup.err)"
        return 1
    fi
    if ! mount -t ext4 -o ro,noload "/dev/mapper/$name" /slot 2>/dev/null; then
        boot "slot $s: verification failed: no mountable filesystem through dm-verity (tampered, or no hash tree after the image)"
        dmsetup remove "$name" 2>/dev/null
        return 1
    fi
    # the application's files, read through dm-verity: a changed block gives EIO here
    if ! (for f in $(find /slot/app -type f 2>/dev/null); do cat "$f" > /dev/null || exit 1; done) 2>/dev/null \
       || dmsetup status "$name" | grep -q ' C$'; then
        boot "slot $s: verification failed: dm-verity found corrupted blocks (the slot differs from what the TA approved)"
        umount /slot; dmsetup remove "$name" 2>/dev/null
        return 1
    fi
    boot "slot $s: dm-verity device /dev/mapper/$name (root hash from the TA) mounted read-only at /slot"
    boot "slot $s verified in $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.2f", b - a }') s (BOOT_VERIFY, dm-verity setup, application read)"
    return 0
}
has_left=""
for s in $order; do eval left=\$BOOT_${s}_LEFT; [ "$left" -gt 0 ] && has_left=1; done
if [ -z "$has_left" ]; then
    boot "NO-SLOT-LEFT: no slot in BOOT_ORDER=\"$BOOT_ORDER\" has tries left; resetting BOOT_A_LEFT=3 BOOT_B_LEFT=3"
    BOOT_A_LEFT=3; BOOT_B_LEFT=3
fi
slot=""; refused=""
for s in $(candidates); do
    if [ -z "$verified" ]; then
        slot=$s; break
    fi
    if verify "$s"; then slot=$s; break; fi
    refused="$refused $s"
done
if [ -n "$slot" ]; then
    eval left=\$BOOT_${slot}_LEFT
    if [ "$left" -gt 0 ]; then
        eval BOOT_${slot}_LEFT=$((left - 1))
        write_bootstate || fatal "cannot write $BS"
        boot "booting slot $slot (BOOT_${slot}_LEFT $left -> $((left - 1)))"
    else
        boot "booting slot $slot as the fallback (BOOT_${slot}_LEFT=0)"
    fi
    echo "$slot" > /run/suit/booted-slot
    if [ -z "$verified" ]; then
        boot "WARNING: no suit-agent in this image: slot $slot is mounted WITHOUT verification"
        slotserial=slot-$(echo "$slot" | tr AB ab)
        if dev=$(disk "$slotserial"); then
            if mount -t ext4 -o ro,noload "$dev" /slot 2>/dev/null; then
                boot "slot $slot: $dev mounted read-only at /slot"
            else
                boot "slot $slot: no ext4 filesystem on $dev, nothing to start"
            fi
        else
            boot "slot $slot: no disk with serial=$slotserial"
        fi
    fi
else
    boot "recovery: no slot is approved by the TA and verifies (refused:$refused); not running any application"
fi
if usb=$(disk usb); then
    mount -t ext4 -o ro "$usb" /media/usb 2>/dev/null && say "usb disk $usb mounted read-only at /media/usb"
fi

# ---- network: loopback, and eth0 for the test server at 10.0.2.100:8080 ----
ifconfig lo 127.0.0.1 up
if [ -e /sys/class/net/eth0 ]; then
    ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && say "network eth0 10.0.2.15 (test server http://10.0.2.100:8080/)"
fi

say "ready (uptime $(cut -d' ' -f1 /proc/uptime) s)"
echo "SUIT-READY slot=${slot:-none}"

# ---- the update agent's boot check: after the TEE and the network, before the application ----
if [ -n "$slot" ] && [ -x /usr/bin/suit-agent ] && [ -f /etc/suit-agent/config.toml ]; then
    say "suit-agent boot-check (slot $slot)"
    t0=$(cut -d' ' -f1 /proc/uptime)
    # through a pipe: the agent logs plain lines, as into a service's journal
    set -o pipefail
    suit-agent boot-check 2>&1 | cat; rc=$?
    set +o pipefail
    secs=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.2f", b - a }')
    if [ $rc != 0 ]; then
        echo "SUIT-BOOTCHECK: FAILED (exit $rc, $secs s): rebooting; the boot state picks the next slot"
        finish
    fi
    echo "SUIT-BOOTCHECK: ok ($secs s)"
fi

# ---- the slot's application, then the run's scenario ----
if [ -n "$slot" ] && [ -x /slot/app/start ]; then
    echo "SUIT-APP: starting /slot/app/start (slot $slot)"
    /slot/app/start; rc=$?
    echo "SUIT-APP: exit $rc"
fi
if [ -f /scenario.sh ]; then
    echo "SUIT-SCENARIO: start"
    (cd /root && sh /scenario.sh); rc=$?
    echo "SUIT-SCENARIO: exit $rc"
fi
case " $cmdline " in
    *" suit.shell "*) say "suit.shell: interactive shell, exit it to power off"; setsid cttyhack sh ;;
esac
finish

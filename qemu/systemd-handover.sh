
# ---- qemu/systemd-handover.sh: hand over to systemd on the root disk ----
# Appended by `qemu/systemd-root.sh init` to qemu/init.sh cut before its boot check: everything
# above (disks, data disk, TEE, the A/B decision verified through the TA and dm-verity, network)
# has run. systemd on the root disk (serial "root") runs the rest as units: tee-supplicant,
# suit-agent-boot-check, the slot's application, suit-agent (the daemon). The verified slot
# stays mounted at /slot (its dm-verity device), /data and /run (booted-slot) move along.
root_dev=$(disk root) || fatal "no root disk (serial=root) for the systemd device"
# systemd starts its own tee-supplicant (the package's drop-in waits for /dev/teepriv0)
pids=$(pidof tee-supplicant)
if [ -n "$pids" ]; then
    kill $pids
    i=0
    while [ -n "$(pidof tee-supplicant)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
fi
umount /var/lib/optee-client/data/tee || fatal "cannot unmount the REE-FS bind mount"
mkdir -p /newroot
mount -t ext4 -o rw,noatime "$root_dev" /newroot || fatal "cannot mount the root disk $root_dev"
[ -x /newroot/lib/systemd/systemd ] || fatal "no systemd on the root disk $root_dev"
# (the initramfs's busybox has no mountpoint applet: /proc/mounts says what is mounted)
mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }
for m in /data /slot /media/usb; do
    if mounted "$m"; then
        mkdir -p "/newroot$m"
        mount -o move "$m" "/newroot$m" || fatal "cannot move $m into the root"
    fi
done
umount /tmp
for m in /run /sys /proc /dev; do
    mount -o move "$m" "/newroot$m" || fatal "cannot move $m into the root"
done
echo "SUIT-INIT: switch_root to systemd on $root_dev (slot ${slot:-none}, uptime $(cut -d' ' -f1 /newroot/proc/uptime) s)"
exec switch_root /newroot /lib/systemd/systemd

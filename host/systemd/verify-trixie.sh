#!/bin/bash
# verify.sh with the target's systemd: Debian trixie's (257), from a small amd64 trixie root made
# with mmdebstrap (essential + systemd, ~80 MB, about a minute) and cached in
# $SYSTEMD_ROOT_DIR (default build/systemd-trixie); its systemd-analyze runs through the root's
# own dynamic loader: no chroot, nothing installed on the host. The units and drop-in are the
# same on arm64; only the architecture of the binary differs. Exit codes as verify.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/qemu/debian.sh"
: "${SYSTEMD_ROOT_DIR:=$repo/build/systemd-trixie}"
root=$SYSTEMD_ROOT_DIR/root
stamp="trixie systemd $(sha256sum "$here/verify-trixie.sh" | cut -d' ' -f1)"
if [ ! -x "$root/usr/bin/systemd-analyze" ] || [ "$(cat "$SYSTEMD_ROOT_DIR/stamp" 2>/dev/null)" != "$stamp" ]; then
    host_tools mmdebstrap
    rm -rf "$SYSTEMD_ROOT_DIR"; mkdir -p "$SYSTEMD_ROOT_DIR"
    mmdebstrap --variant=essential --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        --include=systemd --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        trixie "$root" "deb $(debian_mirror) trixie main" > "$SYSTEMD_ROOT_DIR/mmdebstrap.log" 2>&1 \
        || { tail -n 20 "$SYSTEMD_ROOT_DIR/mmdebstrap.log" >&2; exit 1; }
    echo "$stamp" > "$SYSTEMD_ROOT_DIR/stamp"
fi
lib=$root/usr/lib/x86_64-linux-gnu
export SYSTEMD_ANALYZE="$root/usr/lib64/ld-linux-x86-64.so.2 --library-path $lib:$lib/systemd $root/usr/bin/systemd-analyze"
export SYSTEMD_UNIT_DIR=$root/usr/lib/systemd/system
exec bash "$here/verify.sh"

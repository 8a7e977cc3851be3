#!/usr/bin/env bash
# packaging/deb/build.sh — what `make deb` runs after building the binaries: lays out and builds
# the Debian packages into $DEB_OUT (default build/deb), then checks them.
#
#   suit-agent_<v>_arm64.deb  the device agent (aarch64 build with the OP-TEE backend), its
#                             systemd units (enabled by postinst), the tee-supplicant drop-in and
#                             udev rule, the example configuration, suit-agent(8)
#   suit-ta_<v>_arm64.deb     the signed TA in /usr/lib/optee_armtz (own package: other key,
#                             other cadence)
#   suit-tool_<v>_amd64.deb   the vendor CLI (host build, OpenSSL provider), suit-tool(1)
#
# Depends: suit-tool's by dpkg-shlibdeps; the agent's by hand (this amd64 host has no arm64
# libteec2 to inspect), checked here against the binary's NEEDED entries and glibc symbol
# versions. Checks: lintian (errors, warnings and info tags fail; the overrides in packaging/deb/<pkg>/
# are each justified there), and dpkg installing and purging them in a trixie root (below).
#
# Inputs: AGENT_BIN, TOOL_BIN, TA_FILE (defaults: the outputs of make host-aarch64, the host
# release build, make ta).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/packaging/deb
target_dir=${CARGO_TARGET_DIR:-$repo/target}
: "${AGENT_BIN:=$target_dir/aarch64-unknown-linux-gnu/release/suit-agent}"
: "${TOOL_BIN:=$target_dir/release/suit-tool}"
: "${TA_FILE:=$repo/build/ta/$(cat "$repo/ta/uuid").ta}"
: "${DEB_OUT:=$repo/build/deb}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/host/Cargo.toml" | head -n1)
log() { printf '\033[1m[deb]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[deb] error:\033[0m %s\n' "$*" >&2; exit 1; }

for f in "$AGENT_BIN" "$TOOL_BIN" "$TA_FILE"; do [ -f "$f" ] || fail "missing $f"; done
work=$(mktemp -d "${TMPDIR:-/tmp}/suit-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -rf "$DEB_OUT" && mkdir -p "$DEB_OUT"

# install MODE SRC DEST: one file into a package tree.
put() { install -D -m "$1" "$2" "$3"; }
# The documentation every package carries.
docs() {
    local root=$1 pkg=$2
    put 0644 "$here/copyright" "$root/usr/share/doc/$pkg/copyright"
    sed "s/@VERSION@/$version/" "$here/changelog" | gzip -9n > "$work/changelog.gz"
    put 0644 "$work/changelog.gz" "$root/usr/share/doc/$pkg/changelog.gz"
    if [ -f "$here/$pkg/lintian-overrides" ]; then
        put 0644 "$here/$pkg/lintian-overrides" "$root/usr/share/lintian/overrides/$pkg"
    fi
}
man() { gzip -9n < "$2" > "$work/$(basename "$2").gz" && put 0644 "$work/$(basename "$2").gz" "$1/$(basename "$2").gz"; }
# build PKG ROOT DEPENDS: control file, maintainer scripts, md5sums, dpkg-deb.
build() {
    local pkg=$1 root=$2 depends=${3:-}
    mkdir -p "$root/DEBIAN"
    local size
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
        "$here/$pkg/control" > "$root/DEBIAN/control"
    for script in postinst prerm postrm; do
        [ -f "$here/$pkg/$script" ] && put 0755 "$here/$pkg/$script" "$root/DEBIAN/$script"
    done
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
        > "$root/DEBIAN/md5sums"
    chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"
    find "$root" -type d -exec chmod 0755 {} +
    dpkg-deb --root-owner-group -Zxz --build "$root" "$DEB_OUT" >/dev/null
}

# --- suit-agent (arm64)
root=$work/suit-agent
put 0755 "$AGENT_BIN" "$root/usr/bin/suit-agent"
aarch64-linux-gnu-strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/suit-agent"
# The hand-written Depends must cover what the binary needs.
needed=$(aarch64-linux-gnu-readelf -d "$root/usr/bin/suit-agent" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
for lib in $needed; do
    case "$lib" in
        libc.so.6|libm.so.6|ld-linux-aarch64.so.1) ;;
        libgcc_s.so.1) ;;
        libteec.so.2) ;;
        *) fail "suit-agent needs $lib, which packaging/deb/suit-agent/control does not depend on" ;;
    esac
done
glibc=$(aarch64-linux-gnu-objdump -T "$root/usr/bin/suit-agent" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)
declared=$(sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p' "$here/suit-agent/control")
[ "$(printf '%s\n%s\n' "$glibc" "$declared" | sort -V | tail -n1)" = "$declared" ] \
    || fail "suit-agent needs glibc $glibc, the control file says libc6 (>= $declared)"
for unit in suit-agent.service suit-agent-boot-check.service; do
    put 0644 "$repo/host/systemd/$unit" "$root/usr/lib/systemd/system/$unit"
done
put 0644 "$repo/host/systemd/tee-supplicant.service.d/suit-agent.conf" \
    "$root/usr/lib/systemd/system/tee-supplicant.service.d/suit-agent.conf"
put 0644 "$repo/host/systemd/60-suit-agent-tee.rules" "$root/usr/lib/udev/rules.d/60-suit-agent-tee.rules"
put 0644 "$repo/host/examples/agent-config.toml" "$root/usr/share/doc/suit-agent/examples/agent-config.toml"
man "$root/usr/share/man/man8" "$repo/packaging/man/suit-agent.8"
docs "$root" suit-agent
build suit-agent "$root"
log "suit-agent: NEEDED $needed; glibc >= $glibc"

# --- suit-ta (arm64): the signed TA (an OP-TEE image, not a Linux ELF)
root=$work/suit-ta
put 0644 "$TA_FILE" "$root/usr/lib/optee_armtz/$(basename "$TA_FILE")"
docs "$root" suit-ta
build suit-ta "$root"

# --- suit-tool (amd64)
root=$work/suit-tool
put 0755 "$TOOL_BIN" "$root/usr/bin/suit-tool"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/suit-tool"
mkdir -p "$work/shlibs/debian"
printf 'Source: suit-optee\n\nPackage: suit-tool\nArchitecture: amd64\n' > "$work/shlibs/debian/control"
tool_depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$root/usr/bin/suit-tool" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$tool_depends" ] || fail "dpkg-shlibdeps found no dependencies of suit-tool"
man "$root/usr/share/man/man1" "$repo/packaging/man/suit-tool.1"
docs "$root" suit-tool
build suit-tool "$root" "$tool_depends"

log "built: $(cd "$DEB_OUT" && ls *.deb | tr '\n' ' ')"

# --- checks
if command -v lintian >/dev/null; then
    lintian --fail-on error,warning,info --display-info "$DEB_OUT"/*.deb \
        || fail "lintian found errors or warnings (above)"
    log "lintian: no errors, warnings or info tags (overrides: packaging/deb/*/lintian-overrides)"
else
    fail "lintian is not installed (.ci/run installs it)"
fi
# Installed with dpkg (maintainer scripts included, run by dpkg in the root) into a copy of the
# amd64 trixie root of host/systemd/verify-trixie.sh (made and cached by it; it also checks the
# units with trixie's systemd): trixie's deb-systemd-helper must enable both units, and a purge
# must disable them. The arm64 packages' Depends (arm64 libraries) are not in that root:
# --force-depends; the binaries are not run there.
SYSTEMD_ROOT_DIR=${SYSTEMD_ROOT_DIR:-$repo/build/systemd-trixie} bash "$repo/host/systemd/verify-trixie.sh" >&2
troot=$work/trixie
cp -a "${SYSTEMD_ROOT_DIR:-$repo/build/systemd-trixie}/root" "$troot"
dpkg --root="$troot" --add-architecture arm64
wants=$troot/etc/systemd/system/multi-user.target.wants
dpkg --root="$troot" --force-depends -i "$DEB_OUT"/*.deb > "$work/dpkg.log" 2>&1 \
    || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed in the trixie root"; }
for f in usr/bin/suit-agent usr/bin/suit-tool "usr/lib/optee_armtz/$(basename "$TA_FILE")" \
    usr/lib/systemd/system/tee-supplicant.service.d/suit-agent.conf usr/lib/udev/rules.d/60-suit-agent-tee.rules; do
    [ -f "$troot/$f" ] || fail "not installed by dpkg: /$f"
done
for unit in suit-agent.service suit-agent-boot-check.service; do
    [ -L "$wants/$unit" ] || fail "the postinst did not enable $unit (log: $(cat "$work/dpkg.log"))"
done
dpkg --root="$troot" --purge suit-agent >> "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --purge failed"; }
for unit in suit-agent.service suit-agent-boot-check.service; do
    [ ! -e "$wants/$unit" ] && [ ! -L "$wants/$unit" ] || fail "the purge left $unit enabled"
done
log "dpkg in a trixie root: installed all three, the postinst enabled both units, the purge disabled them"

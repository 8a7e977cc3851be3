#!/usr/bin/env bash
# qemu/debian.sh — Debian package helpers shared by the QEMU environment and the TA build.
#
# Source it from another script (it defines functions only), or run it directly:
#   qemu/debian.sh host-tools PKG...      install missing host packages with apt-get
#   qemu/debian.sh download PKG...        fetch trixie arm64 .debs into $QEMU_CACHE/debs
#   qemu/debian.sh devkit                 extract optee-os-dev, print TA_DEV_KIT_DIR
#
# Target packages come from Debian trixie through a PRIVATE apt configuration kept in
# $QEMU_CACHE/apt: the machine's own apt state (sources, lists, status) is never touched.
# The mirror is the one the machine's apt sources already use, unless DEBIAN_MIRROR= is set.
set -euo pipefail

: "${QEMU_CACHE:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/qemu-cache}"
: "${DEBIAN_SUITE:=trixie}"
export QEMU_CACHE

say() { printf '\033[1m[qemu-env]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[qemu-env] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Run a command as root (directly, or through sudo when we are not root).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*  (install sudo or run as root)"
    fi
}

# host_tools PKG... — install the Debian host packages that are not installed yet.
host_tools() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing host packages: ${missing[*]}"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    if ! as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; then
        say "install failed; refreshing the machine's package lists and retrying"
        as_root "${apt[@]}" update
        as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
    fi
}

# debian_mirror — the Debian mirror URL of this machine's apt sources (or $DEBIAN_MIRROR).
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "${DEBIAN_MIRROR%/}"; return; fi
    local uri=""
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        # deb822: the URIs: of the first stanza that is not the security archive
        uri=$(awk 'tolower($1)=="uris:" { for (i=2;i<=NF;i++) if ($i !~ /security/) { print $i; exit } }' \
              /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        # one-line format: "deb [options] URI suite components"
        uri=$(awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' \
              /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || die "cannot find a Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list; set DEBIAN_MIRROR=http://your-mirror/debian"
    echo "${uri%/}"
}

# papt ARGS... — apt-get / apt-cache with the private trixie configuration.
papt() {
    local tool=$1; shift
    "$tool" -o Dir::Etc::sourcelist="$QEMU_CACHE/apt/sources.list" -o Dir::Etc::sourceparts=/dev/null \
        -o Dir::State::Lists="$QEMU_CACHE/apt/lists" -o Dir::Cache="$QEMU_CACHE/apt/cache" \
        -o Dir::State::status=/dev/null -o APT::Architectures::=amd64 -o APT::Architectures::=arm64 \
        -o APT::Sandbox::User=root -o Debug::NoLocking=1 -o Acquire::Languages=none \
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false "$@"
}

# apt_setup — write the private sources.list and fetch the package lists (once; REFRESH=1 to redo).
apt_setup() {
    local d=$QEMU_CACHE/apt mirror signed=""
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
    mirror=$(debian_mirror)
    [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] && signed="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    printf 'deb %s%s %s main\ndeb-src %s%s %s main\n' "$signed" "$mirror" "$DEBIAN_SUITE" \
        "$signed" "$mirror" "$DEBIAN_SUITE" > "$d/sources.list.new"
    if cmp -s "$d/sources.list.new" "$d/sources.list" && [ -e "$d/lists/.complete" ] && [ -z "${REFRESH:-}" ]; then
        rm -f "$d/sources.list.new"; return 0
    fi
    mv "$d/sources.list.new" "$d/sources.list"
    say "fetching $DEBIAN_SUITE package lists from $mirror (private apt config in $d)"
    rm -f "$d/lists/.complete"
    papt apt-get -q update >&2 || die "apt-get update of $DEBIAN_SUITE failed (mirror $mirror; set DEBIAN_MIRROR= to use another)"
    touch "$d/lists/.complete"
}

# fetch_debs PKG:ARCH... — download the .debs not yet in $QEMU_CACHE/debs (one apt-get call
# for all of them) and print the path of each, one a line, in order. debs/index records
# "name version file arch" of what is cached.
fetch_debs() {
    local d=$QEMU_CACHE/debs spec name arch file missing=()
    mkdir -p "$d"; touch "$d/index"
    cached() { awk -v n="$1" -v a="$2" '$1==n && $4==a { f=$3 } END { print f }' "$d/index"; }
    for spec in "$@"; do
        file=$(cached "${spec%%:*}" "${spec#*:}")
        [ -n "$file" ] && [ -s "$d/$file" ] || missing+=("$spec")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt_setup
        say "downloading ${missing[*]}"
        (cd "$d" && papt apt-get -q download "${missing[@]}" >&2) \
            || die "download from $DEBIAN_SUITE failed: ${missing[*]}"
        for spec in "${missing[@]}"; do
            name=${spec%%:*}; arch=${spec#*:}
            file=$(cd "$d" && ls -t "${name}_"*"_${arch}.deb" 2>/dev/null | head -n1)
            [ -n "$file" ] || die "apt-get download gave no .deb for $spec"
            awk -v n="$name" -v a="$arch" '!($1==n && $4==a)' "$d/index" > "$d/index.tmp"
            echo "$name $(dpkg-deb -f "$d/$file" Version) $file $arch" >> "$d/index.tmp"
            mv "$d/index.tmp" "$d/index"
        done
    fi
    for spec in "$@"; do echo "$d/$(cached "${spec%%:*}" "${spec#*:}")"; done
}

# unpack_deb DEB — extract once into $QEMU_CACHE/pkgs/<file name without .deb>; print that dir.
unpack_deb() {
    local out=$QEMU_CACHE/pkgs/$(basename "$1" .deb)
    if [ ! -e "$out/.unpacked" ]; then
        rm -rf "$out"; mkdir -p "$out"
        dpkg-deb -x "$1" "$out" || die "cannot unpack $1"
        touch "$out/.unpacked"
    fi
    echo "$out"
}

# devkit_dir — extract the trixie optee-os-dev TA dev kit and print its TA_DEV_KIT_DIR.
devkit_dir() {
    local deb dir
    deb=$(fetch_debs optee-os-dev:arm64)
    dir=$(unpack_deb "$deb")/usr/lib/optee-os-dev/vexpress-qemu_armv8a
    [ -f "$dir/mk/ta_dev_kit.mk" ] || die "no TA dev kit in $deb (expected $dir)"
    echo "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    cmd=${1:-}; shift || true
    case "$cmd" in
        host-tools) host_tools "$@" ;;
        download)   for p in "$@"; do case "$p" in *:*) fetch_debs "$p" ;; *) fetch_debs "$p:arm64" ;; esac; done ;;
        devkit)     devkit_dir ;;
        mirror)     debian_mirror ;;
        *) echo "usage: $0 host-tools PKG... | download PKG[:ARCH]... | devkit | mirror" >&2; exit 2 ;;
    esac
fi

#!/usr/bin/env bash
# qemu/rpmb-common.sh — shared by the scripts of the RPMB variant of the QEMU environment
# (QEMU_RPMB=1): qemu/build-kernel.sh, qemu/build-optee.sh, qemu/qemu11-root.sh,
# qemu/build-rpmb.sh. Source it (it defines functions and variables only).
#
# Everything goes under $QEMU_CACHE/rpmb (RC below), beside the base environment:
#   apt/          a second private apt configuration: trixie + trixie-backports (binary and
#                 source) and sid (source only), so that the source versions below and QEMU 11
#                 can be found; the machine's apt state is never touched
#   src/          downloaded source packages (checked: apt verifies every file against the
#                 signed Sources index, dpkg-source checks the .dsc checksums again)
#   kernel/ optee/ qemu11/ fw/ ...   results (see the scripts)
#
# Versions are pinned (the registry mirror does not serve every source version; these download
# and were checked file by file); override with the variables below.
set -euo pipefail

rpmb_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$rpmb_here/debian.sh"

: "${LINUX_SRC_VERSION:=6.12.107-1}"           # trixie's 6.12 line; has CONFIG_RPMB + OP-TEE/MMC parts
: "${OPTEE_OS_SRC_VERSION:=4.10.0-2}"           # sid; 4.5.0-2's source does not download
: "${QEMU11_VERSION:=1:11.1.3+ds-1~bpo13+1}"    # trixie-backports
RC=$QEMU_CACHE/rpmb
export RC
# The OP-TEE configuration (qemu/build-optee.sh explains each setting); its TA dev kit
# (qemu/build-devkit.sh) is built with the same.
OPTEE_FLAGS=(PLATFORM=vexpress-qemu_armv8a CFG_ARM64_core=y CFG_USER_TA_TARGETS=ta_arm64
             CFG_ARM_GICV3=y CFG_VIRTUALIZATION=n CFG_TEE_BENCHMARK=n DEBUG=0
             CFG_TEE_CORE_LOG_LEVEL=2 CFG_RPMB_FS=y CFG_RPMB_ANNOUNCE_PROBE_CAP=y
             CFG_RPMB_WRITE_KEY=n CFG_RPMB_TESTKEY=n)

# The RPMB key QEMU's eMMC is created with (auth-key=, standing for the key a factory programs)
# and OP-TEE uses (CFG_RPMB_TESTKEY=y: OP-TEE's published development key, core/tee/tee_rpmb_fs.c).
RPMB_DEV_KEY=D3EB3EC36E334C9F988CE2C0B85954610D2BCF8664844DF2AB56E6C61BB701E4

# rpapt TOOL ARGS... — apt-get / apt-cache with the RPMB variant's private configuration.
rpapt() {
    local tool=$1; shift
    "$tool" -o Dir::Etc::sourcelist="$RC/apt/sources.list" -o Dir::Etc::sourceparts=/dev/null \
        -o Dir::State::Lists="$RC/apt/lists" -o Dir::Cache="$RC/apt/cache" \
        -o Dir::State::status=/dev/null -o APT::Architectures::=amd64 -o APT::Architectures::=arm64 \
        -o APT::Sandbox::User=root -o Debug::NoLocking=1 -o Acquire::Languages=none \
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false "$@"
}

# rpmb_apt_setup — write the private sources.list and fetch its lists (once; REFRESH=1 to redo).
rpmb_apt_setup() {
    local d=$RC/apt mirror signed=""
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
    mirror=$(debian_mirror)
    [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] && signed="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    {
        printf 'deb %s%s trixie main\n' "$signed" "$mirror"
        printf 'deb %s%s trixie-backports main\n' "$signed" "$mirror"
        printf 'deb-src %s%s trixie main\n' "$signed" "$mirror"
        printf 'deb-src %s%s trixie-backports main\n' "$signed" "$mirror"
        printf 'deb-src %s%s sid main\n' "$signed" "$mirror"
    } > "$d/sources.list.new"
    if cmp -s "$d/sources.list.new" "$d/sources.list" && [ -e "$d/lists/.complete" ] && [ -z "${REFRESH:-}" ]; then
        rm -f "$d/sources.list.new"; return 0
    fi
    mv "$d/sources.list.new" "$d/sources.list"
    say "fetching trixie, trixie-backports and sid (sources) package lists from $mirror (private apt config in $d)"
    rm -f "$d/lists/.complete"
    rpapt apt-get -q update >&2 || die "apt-get update failed (mirror $mirror; set DEBIAN_MIRROR= to use another)"
    touch "$d/lists/.complete"
}

# fetch_source PKG VERSION — download the source package once into $RC/src/PKG_VERSION and
# print its .dsc. apt-get checks each file against the signed index; a partial download is
# removed, so a rerun starts clean.
fetch_source() {
    local pkg=$1 ver=$2 d dsc
    d=$RC/src/${pkg}_${ver//[:~]/_}
    dsc=$d/${pkg}_${ver#*:}.dsc
    if [ ! -e "$d/.complete" ]; then
        rpmb_apt_setup
        rm -rf "$d"; mkdir -p "$d"
        say "downloading the $pkg $ver source package"
        if ! (cd "$d" && rpapt apt-get -q source --download-only "$pkg=$ver" >&2); then
            rm -rf "$d"
            die "cannot download the source of $pkg $ver from the mirror (not every version's files are served; set the version variable in qemu/rpmb-common.sh)"
        fi
        [ -f "$dsc" ] || die "no $dsc after apt-get source"
        touch "$d/.complete"
    fi
    echo "$dsc"
}

# unpack_source DSC DIR — the unpacked tree of DSC in DIR (dpkg-source checks the checksums of
# the .dsc; the signature cannot be checked without debian-keyring, the signed Sources index
# already vouches). A tree left by a failed build of the same .dsc is reused (make resumes).
unpack_source() {
    [ -e "$2/.unpacked" ] && [ "$(cat "$2/.unpacked")" = "$(basename "$1")" ] && return 0
    rm -rf "$2"; mkdir -p "$(dirname "$2")"
    dpkg-source -x "$1" "$2" > "$2.unpack.log" 2>&1 || { tail -n 20 "$2.unpack.log" >&2; die "cannot unpack $1"; }
    rm -f "$2.unpack.log" "$(dirname "$2")"/*.orig.tar.*
    basename "$1" > "$2/.unpacked"
}

# stamp_of TEXT... — a short hash of the given strings and of the files named by FILES.
stamp_of() { { printf '%s\n' "$@"; cat "${STAMP_FILES[@]}"; } | sha256sum | cut -c1-16; }

# timed STEP — report the seconds since $t0 for STEP (also appended to $RC/timings.log).
timed() {
    local s=$(( $(date +%s) - t0 ))
    mkdir -p "$RC"
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $1 ${s}s" >> "$RC/timings.log"
    say "$1 done in ${s} s"
}

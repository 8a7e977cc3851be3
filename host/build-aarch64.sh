#!/usr/bin/env bash
# host/build-aarch64.sh — what `make host-aarch64` runs: cross-builds suit-host's binaries for
# the aarch64 device with the OP-TEE backend of the TEE bridge.
#
#  1. installs what is missing: gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (host
#     packages), the rustup target aarch64-unknown-linux-gnu;
#  2. fetches Debian trixie's libteec2 and optee-client-dev (arm64) through the private apt
#     configuration of qemu/debian.sh and lays out $OPTEE_CLIENT_EXPORT/usr/lib/libteec.so the
#     way optee-teec-sys expects it (plus the headers in usr/include);
#  3. cargo build --release --target aarch64-unknown-linux-gnu -p suit-host --no-default-features
#     --features optee (the portable crypto provider: the device image has no libssl).
#
# Output: target/aarch64-unknown-linux-gnu/release/<binary>. The binaries need glibc >= 2.34,
# libgcc_s.so.1 and libteec.so.2 on the device (the QEMU image has them).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo/qemu/debian.sh"
: "${OPTEE_CLIENT_EXPORT:=$repo/build/optee-client-export}"
target=aarch64-unknown-linux-gnu
log() { printf '\033[1m[host-aarch64]\033[0m %s\n' "$*" >&2; }

host_tools gcc-aarch64-linux-gnu libc6-dev-arm64-cross
cd "$repo"
if ! rustup target list --installed | grep -qx "$target"; then
    log "adding rustup target $target"
    rustup target add "$target"
fi

# libteec for linking: Debian ships it under usr/lib/aarch64-linux-gnu; optee-teec-sys looks
# in $OPTEE_CLIENT_EXPORT/usr/lib.
mapfile -t debs < <(fetch_debs libteec2:arm64 optee-client-dev:arm64)
lib=$(unpack_deb "${debs[0]}")/usr/lib/aarch64-linux-gnu
dev=$(unpack_deb "${debs[1]}")
so=$(cd "$lib" && ls libteec.so.2.* | head -n1)
[ -n "$so" ] || die "no libteec.so.2.* in ${debs[0]}"
mkdir -p "$OPTEE_CLIENT_EXPORT/usr/lib" "$OPTEE_CLIENT_EXPORT/usr/include"
cp -f "$lib/$so" "$OPTEE_CLIENT_EXPORT/usr/lib/"
ln -sf "$so" "$OPTEE_CLIENT_EXPORT/usr/lib/libteec.so.2"
ln -sf "$so" "$OPTEE_CLIENT_EXPORT/usr/lib/libteec.so"
cp -rf "$dev/usr/include/." "$OPTEE_CLIENT_EXPORT/usr/include/" 2>/dev/null || true
export OPTEE_CLIENT_EXPORT

log "building suit-host for $target with the OP-TEE backend"
# No OpenSSL provider on the device (the image ships no libssl): the agent there uses the
# portable RustCrypto provider (feature `openssl` off).
cargo build --release --target "$target" -p suit-host --no-default-features --features optee
log "built: $(ls target/$target/release/ | grep -E '^suit-' | grep -v '\.d$' | tr '\n' ' ')"

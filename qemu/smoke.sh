#!/usr/bin/env bash
# qemu/smoke.sh — smoke test of the environment itself (`make qemu-smoke`).
#
# Builds the environment if needed (qemu/build-env.sh), boots it on fresh disks in
# build/qemu-smoke and runs OP-TEE's own `xtest -t regression 1001 4001 6001` (basic TA
# invocation, crypto, secure storage on the data disk). The verdict comes from the serial log
# only: the guest prints "SUIT-SMOKE: PASS" when xtest exits 0 and reports no failed test case.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
# QEMU_RPMB=1 (default): the RPMB variant, which must also report OP-TEE's kernel RPMB route;
# QEMU_RPMB=0: the base environment
rpmb=${QEMU_RPMB:-1}
suffix=""; [ "$rpmb" != 1 ] || suffix=-rpmb
dir=${SMOKE_DIR:-$repo/build/qemu-smoke$suffix}

QEMU_RPMB=$rpmb "$here/build-env.sh"
rm -rf "$dir"; mkdir -p "$dir"
cat > "$dir/smoke-guest.sh" <<'GUEST'
xtest -t regression 1001 4001 6001 > /tmp/xtest.log 2>&1
rc=$?
cat /tmp/xtest.log
if [ $rc = 0 ] && grep -q 'test cases of which 0 failed' /tmp/xtest.log; then
    echo "SUIT-SMOKE: PASS"
else
    echo "SUIT-SMOKE: FAIL (xtest exit $rc)"
fi
GUEST
status=0
"$here/run.sh" --dir "$dir" --script "$dir/smoke-guest.sh" --timeout "${SMOKE_TIMEOUT:-300}" > "$dir/run.out" 2>&1 || status=$?
grep -aE '^(SUIT-|E/|.*(subtests|test cases) of which)' "$dir/uart0.log" | tr -d '\r' || true
route_ok=1
if [ "$rpmb" = 1 ] && ! grep -aq '^SUIT-INIT: rpmb routing=kernel devices=rpmb0' "$dir/uart0.log"; then
    route_ok=0; echo "qemu-smoke: OP-TEE does not reach the eMMC's RPMB through the kernel (no 'SUIT-INIT: rpmb routing=kernel devices=rpmb0')" >&2
fi
if [ $status = 0 ] && [ $route_ok = 1 ] && grep -aq '^SUIT-SMOKE: PASS' "$dir/uart0.log"; then
    printf '\033[1;32mqemu-smoke: PASS\033[0m (xtest regression 1001 4001 6001 in OP-TEE under QEMU; %s s)\n' "$SECONDS"
    exit 0
fi
printf '\033[1;31mqemu-smoke: FAIL\033[0m (run.sh status %s)\n  normal-world log: %s\n  OP-TEE log:       %s\n  run output:       %s\n' \
    "$status" "$dir/uart0.log" "$dir/optee.log" "$dir/run.out" >&2
tail -n 40 "$dir/uart0.log" >&2
exit 1

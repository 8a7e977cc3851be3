#!/bin/bash
# Checks the agent's systemd units with this machine's systemd: `systemd-analyze verify` must
# print nothing, and `systemd-analyze security --offline` must rate each unit's exposure at most
# MAX_EXPOSURE (systemd's scale: 0 safest .. 10 unsafe; below 4 is "OK").
# They run in a scratch root holding the units, the host's own units (targets), a stub
# tee-supplicant.service and a stub /usr/bin/suit-agent, so that nothing outside the
# repository is needed or changed. Exit 0 ok, 1 a finding, 77 systemd-analyze is not installed.
# SYSTEMD_ANALYZE (a command, default systemd-analyze) and SYSTEMD_UNIT_DIR (the system's own
# units, default this machine's) select another systemd: verify-trixie.sh uses the target's.
set -euo pipefail
: "${MAX_EXPOSURE:=3.0}"
here=$(cd "$(dirname "$0")" && pwd)
units=(suit-agent.service suit-agent-boot-check.service)
read -r -a analyze <<<"${SYSTEMD_ANALYZE:-systemd-analyze}"
command -v "${analyze[0]}" >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd/system" "$root/usr/bin"
for d in ${SYSTEMD_UNIT_DIR:-} /usr/lib/systemd/system /lib/systemd/system; do
    [ -d "$d" ] && cp -a "$d/." "$root/usr/lib/systemd/system/" && break
done
for u in "${units[@]}"; do cp "$here/$u" "$root/etc/systemd/system/"; done
printf '[Unit]\nDescription=stub\n[Service]\nExecStart=/usr/bin/suit-agent\n' \
    > "$root/etc/systemd/system/tee-supplicant.service"
# The drop-in the agent's package adds to tee-supplicant.service is verified with it.
cp -r "$here/tee-supplicant.service.d" "$root/etc/systemd/system/"
printf '#!/bin/sh\n' > "$root/usr/bin/suit-agent" && chmod 755 "$root/usr/bin/suit-agent"
status=0
out=$("${analyze[@]}" verify --root="$root" --man=no "${units[@]}" tee-supplicant.service 2>&1) || status=1
if [ -n "$out" ] || [ $status -ne 0 ]; then
    echo "systemd-analyze verify:"; echo "$out"; exit 1
fi
echo "systemd-analyze verify: ${units[*]}: clean ($("${analyze[@]}" --version | head -1))"
for u in "${units[@]}"; do
    line=$("${analyze[@]}" security --offline=yes --root="$root" "$u" 2>&1 | grep 'Overall exposure level') \
        || { echo "$u: systemd-analyze security gave no exposure level"; exit 1; }
    level=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
    echo "$u: exposure $level (at most $MAX_EXPOSURE)"
    awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l <= m) }' || exit 1
done

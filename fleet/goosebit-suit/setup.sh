#!/usr/bin/env bash
# fleet/goosebit-suit/setup.sh — the gooseBit server for tests and demos (`make fleet-env`):
# a Python venv at $GOOSEBIT_VENV (default build/goosebit-venv) with gooseBit 0.2.12 from PyPI
# and this plugin. Idempotent: reinstalls only when the plugin's files changed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${GOOSEBIT_VENV:=$repo/build/goosebit-venv}"
log() { printf '\033[1m[goosebit]\033[0m %s\n' "$*" >&2; }

bash "$repo/qemu/debian.sh" host-tools python3 python3-venv
stamp=$GOOSEBIT_VENV/.goosebit-suit.stamp
want=$(cd "$here" && cat pyproject.toml goosebit_suit/*.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$GOOSEBIT_VENV/bin/uvicorn" ]; then
    exit 0
fi
if [ ! -x "$GOOSEBIT_VENV/bin/pip" ]; then
    log "creating the venv $GOOSEBIT_VENV"
    python3 -m venv "$GOOSEBIT_VENV"
fi
log "installing gooseBit 0.2.12 and the SUIT plugin"
"$GOOSEBIT_VENV/bin/pip" install -q --disable-pip-version-check goosebit==0.2.12
# Built from a copy: pip would leave build/ and *.egg-info in the source tree.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -r "$here/pyproject.toml" "$here/goosebit_suit" "$src/"
"$GOOSEBIT_VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$src"
echo "$want" > "$stamp"
log "ready: $GOOSEBIT_VENV"

#!/usr/bin/env bash
# fleet/goosebit-suit/serve.sh DIR PORT — runs gooseBit with the SUIT plugin on 127.0.0.1:PORT,
# its database and artifacts in DIR (created, schema migrated with aerich). Environment:
# GOOSEBIT_VENV (default build/goosebit-venv, see setup.sh) and any GOOSEBIT_* setting
# (e.g. GOOSEBIT_POLL_TIME=00:00:05, GOOSEBIT_DEVICE_AUTH__ENABLE=true). Runs in the foreground.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${GOOSEBIT_VENV:=$repo/build/goosebit-venv}"
dir=$(mkdir -p "$1" && cd "$1" && pwd)
port=$2
export GOOSEBIT_DB_URI="sqlite:///$dir/db.sqlite3"
export GOOSEBIT_ARTIFACTS_DIR="$dir/artifacts"
export GOOSEBIT_PLUGINS='["goosebit_suit"]'
site=$("$GOOSEBIT_VENV/bin/python" -c 'import goosebit, os; print(os.path.dirname(goosebit.__file__))')
cat > "$dir/pyproject.toml" <<TOML
[tool.aerich]
tortoise_orm = "goosebit.db.config.TORTOISE_CONF"
location = "$site/db/migrations"
src_folder = "./."
TOML
cd "$dir"
"$GOOSEBIT_VENV/bin/aerich" upgrade >/dev/null
exec "$GOOSEBIT_VENV/bin/uvicorn" goosebit:app --host 127.0.0.1 --port "$port"

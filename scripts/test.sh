#!/usr/bin/env bash
# Install everything the test suite needs (redis-server from apt, the dev extras from PyPI),
# run the static checks (ruff, mypy; configured in pyproject.toml) and the whole suite.
# Exits non-zero on any failure. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# A download cut short fails its hash check; try again rather than fail the run on it.
retry() {
    local attempt
    for attempt in 1 2 3; do
        "$@" && return 0
        echo "attempt $attempt of 3 failed: $*" >&2
        sleep $((attempt * 5))
    done
    return 1
}
if ! command -v redis-server >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    retry $SUDO apt-get update -qq
    retry env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
retry python3 -m pip install -q --no-cache-dir -e ".[dev]"
python3 -m ruff check .
python3 -m mypy
python3 -m pytest "$@"

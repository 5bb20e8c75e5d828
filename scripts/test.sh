#!/usr/bin/env bash
# Install everything the test suite needs (redis-server from apt, the dev extras from PyPI)
# and run the whole suite. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
python3 -m pip install -q -e ".[dev]"
python3 -m pytest "$@"

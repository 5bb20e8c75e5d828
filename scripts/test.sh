#!/usr/bin/env bash
# Install everything the test suite needs (redis-server from apt, the dev extras from PyPI),
# run the static checks (ruff, mypy; configured in pyproject.toml) and the whole suite.
# Exits non-zero on any failure. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
python3 -m pip install -q -e ".[dev]"
python3 -m ruff check .
python3 -m mypy
python3 -m pytest "$@"

#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (scripts/setup.sh --test), then runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec python3 -m pytest "$@"

#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, then runs it.
# Debian packages: dataset-fashion-mnist (real data) and chromium (dashboard tests in a real browser).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "warning: no apt-get; tests needing ${need[*]} will be skipped" >&2
  fi
fi

python3 -m pip install -q -e '.[test]'
exec python3 -m pytest "$@"

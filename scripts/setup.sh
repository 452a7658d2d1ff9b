#!/usr/bin/env bash
# Installs nas on a fresh Debian machine: Debian's Fashion-MNIST (the real proxy data, no download at
# run time) when missing, then the package itself. `--test` also installs what the tests need
# (Debian's chromium for the dashboard tests, and the test extras).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "warning: no apt-get: install ${need[*]} yourself (or set NAS_DATA_DIR to Fashion-MNIST's IDX .gz folder)" >&2
  fi
fi

if [ "${1:-}" = "--test" ]; then
  python3 -m pip install -q -e '.[test]'
else
  python3 -m pip install -q -e .
fi

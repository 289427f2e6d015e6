#!/usr/bin/env bash
# Headless Chromium for the browser tests: `ensure` installs Debian's chromium package when it is missing.
set -euo pipefail
BROWSER=/usr/bin/chromium

run_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

case "${1:-ensure}" in
  ensure)
    if [ -x "$BROWSER" ]; then exit 0; fi
    echo "chromium: installing Debian's chromium package" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! run_root apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
      run_root apt-get update -qq >/dev/null
      run_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    [ -x "$BROWSER" ] || { echo "chromium: $BROWSER still missing after install" >&2; exit 1; }
    ;;
  path)
    echo "$BROWSER"
    ;;
  *)
    echo "usage: $0 ensure|path" >&2
    exit 2
    ;;
esac

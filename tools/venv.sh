#!/usr/bin/env bash
# Creates .venv with the locked dependencies (hash-checked) and puts the repo's packages on its path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3.11}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "[venv] Python 3.11 is required ($python not found)" >&2
  exit 1
fi
lock=requirements/lock.txt
stamp=.venv/.lock-$(sha256sum "$lock" | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r "$lock"
  rm -f .venv/.lock-*
  touch "$stamp"
fi
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
{
  echo "$root/contracts/src"
  echo "$root/kit/src"
  for svc in identity licensing queue notification reporting; do echo "$root/services/$svc/src"; done
} >"$site/mpp-dev.pth"

#!/usr/bin/env bash
# Install everything the tests need (into .venv) and run them.
#   tools/run_tests.sh              # the default suite (fast + reference-fixture tiers)
#   tools/run_tests.sh -m slow      # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

# System programs used by some tests: espeak-ng (test speech) and chromium (browser tests).
# Installed when we may (root + apt); otherwise the tests that need them are skipped.
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } \
    || echo "warning: could not install ${missing[*]}; tests that need them will be skipped" >&2
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python tools/install.py --dev
# Lint and layout first: a failure here stops the run before the (long) tests.
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Install what RVC Studio needs (first run only) and open the web UI.
# Extra arguments go to infer-web.py, e.g.  ./go-web.sh --port 7897 --noautoopen
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python tools/install.py
exec .venv/bin/python infer-web.py "$@"

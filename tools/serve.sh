#!/usr/bin/env bash
# One command from a fresh clone to a running server: make .venv, install, run.
# Any arguments are passed to `python -m rtcserver` (see --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/setup-venv.sh"
exec "$root/.venv/bin/python" -m rtcserver "$@"

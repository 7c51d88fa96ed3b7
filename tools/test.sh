#!/usr/bin/env bash
# One command from a fresh clone to a passing suite: system packages (Chromium,
# coturn, redis-server, nginx), .venv with the test extras, the Node baseline's
# packages, then lint (the page's JavaScript too, with Biome: tools/jslint),
# type-check (the SDK's declarations too, with TypeScript: tools/tsc) and the
# whole pytest suite, browser tests included.
# Arguments are passed to pytest (for example: -k relay -x).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/install-system-deps.sh
tools/setup-venv.sh test dev cluster
if command -v npm >/dev/null 2>&1 && [ -f tools/baseline/package.json ]; then
  (cd tools/baseline && npm ci --silent --no-audit --no-fund >/dev/null)
fi
# The page's JavaScript (www/): Biome lints it and checks its formatting (tools/jslint).
(cd tools/jslint && npm ci --silent --no-audit --no-fund >/dev/null)
tools/jslint/node_modules/.bin/biome ci --config-path tools/jslint www
# The SDK's TypeScript declarations against the module (tools/tsc/check.sh).
(cd tools/tsc && npm ci --silent --no-audit --no-fund >/dev/null)
tools/tsc/check.sh
.venv/bin/ruff check rtcserver tests tools
.venv/bin/mypy
# Thousands of sockets in the load tests need more descriptors than the default 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
.venv/bin/python -m pytest "$@"
# The protocol, resume, directory and conference suites again, the server run as two
# workers that share its port (tests/conftest.py: in-process workers, handing sockets
# over and holding seats for each other as worker processes do; docs/ARCHITECTURE.md,
# "Workers").
if [ "$#" -eq 0 ]; then
  RTCSERVER_TEST_WORKERS=2 exec .venv/bin/python -m pytest -p no:randomly \
    tests/test_signaling.py tests/test_resume.py tests/test_phone.py tests/test_calls.py \
    tests/test_conference.py tests/test_presence.py tests/test_sessions.py \
    tests/test_tutorial_dialect.py tests/test_reload_grace.py tests/test_admin.py tests/test_admincli.py
fi

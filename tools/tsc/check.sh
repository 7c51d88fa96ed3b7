#!/usr/bin/env bash
# The SDK's TypeScript declarations (www/sdk/rtcserver.d.ts) checked against the
# module (www/sdk/rtcserver.js), run by tools/test.sh after `npm ci` here:
#   1. TypeScript infers the module's own types from its code (allowJs) into build/impl/;
#   2. a typed app page (example.ts) and conformance.ts compile, with no output,
#      against the declarations and the inferred types: any mismatch is an error.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rm -rf "$here/build"
"$here/node_modules/.bin/tsc" -p "$here/tsconfig.impl.json"
"$here/node_modules/.bin/tsc" -p "$here/tsconfig.json"

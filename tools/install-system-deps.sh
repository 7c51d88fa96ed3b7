#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real: Chromium (browser
# end-to-end tests), coturn (TURN relay tests), redis-server and nginx (cluster tests),
# iproute2 (ip and tc: the browser tests' network namespace, and a media path cut).
# Packages that are already installed are skipped, so a second run costs nothing.
set -euo pipefail

wanted=(chromium coturn redis-server nginx-light iproute2)
missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${wanted[*]})"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "system packages: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian packages start their own daemons; the tests start private instances
# on ephemeral ports, so the system-wide ones are stopped where they were started.
for svc in coturn redis-server nginx; do
  if command -v service >/dev/null 2>&1; then
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  fi
done

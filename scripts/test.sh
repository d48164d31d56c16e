#!/usr/bin/env bash
# The project's one test command (`make test`): installs the tools the tests
# use when they are missing, then runs go vet and the race-enabled test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

command -v go >/dev/null || { echo "go not found: install Go 1.26 (https://go.dev/dl) into /usr/local/go" >&2; exit 1; }

# Every program the tests run, with the Debian package that provides it.
tools=(redis-server:redis-server redis-cli:redis-tools dig:bind9-dnsutils unbound:unbound dnsperf:dnsperf node:nodejs npm:npm chromium:chromium promtool:prometheus)
need=()
for t in "${tools[@]}"; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
# Python modules the tests import, with their Debian package: the
# Sentinel e2e drives redis-py's Sentinel from Debian's python3-redis.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import redis.sentinel' 2>/dev/null || need+=(python3-redis)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
missing=()
for t in "${tools[@]}"; do
  command -v "${t%%:*}" >/dev/null || missing+=("${t%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Without them the tests that need them skip (or fail under CI=true).
  echo "==> still missing after apt-get: ${missing[*]}" >&2
  [ "${CI:-}" = true ] && exit 1
fi
# The Debian packages start system services we do not use; tests start
# their own processes on free ports.
for svc in redis-server unbound prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

# The Sentinel e2e runs ioredis and node-redis from npm, installed once
# into this cache folder (AAGTM_NPM_CACHE).
export AAGTM_NPM_CACHE="${AAGTM_NPM_CACHE:-$HOME/.cache/aagtm-npm}"
if command -v npm >/dev/null && [ ! -d "$AAGTM_NPM_CACHE/node_modules/ioredis" -o ! -d "$AAGTM_NPM_CACHE/node_modules/redis" ]; then
  echo "==> npm install ioredis redis into $AAGTM_NPM_CACHE"
  mkdir -p "$AAGTM_NPM_CACHE"
  npm install --prefix "$AAGTM_NPM_CACHE" --no-audit --no-fund ioredis@6.0.0 redis@6.3.1 >/dev/null
fi

echo "==> go vet ./..."
go vet ./...
echo "==> go test -race ./..."
go test -race -count=1 -timeout 12m ./... "$@"

#!/usr/bin/env bash
# The project's one test command (`make test`): installs the tools the tests
# use when they are missing, then runs go vet and the race-enabled test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v unbound >/dev/null || need+=(unbound)
command -v dnsperf >/dev/null || need+=(dnsperf)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian packages start system services we do not use; tests start
# their own processes on free ports.
for svc in redis-server unbound; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

echo "==> go vet ./..."
go vet ./...
echo "==> go test -race ./..."
go test -race -count=1 -timeout 12m ./... "$@"

#!/usr/bin/env bash
# Run a command with a Prometheus server binary at hand, for tests/test_observability.py.
#
#   tools/with_prometheus.sh make test
#
# Installs Debian's `prometheus` package when no `prometheus` binary is on PATH (as root, or
# through password-less sudo; --no-install-recommends: the binary and its web assets only), then
# exports EDGESCORE_TEST_PROMETHEUS (the binary's path) and runs the command. The test starts
# its own throwaway Prometheus on a free loopback port with a temp config and storage dir, so
# the package's own service is never needed (where the package's postinst does start it, it
# listens on :9090 and is left alone). If Prometheus cannot be had, this says so loudly and runs
# the command anyway: that test then skips (pytest -ra lists why).
set -euo pipefail

log() { echo "with_prometheus: $*" >&2; }

install_prometheus() {
  local run=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      run=(sudo -n)
    else
      log "prometheus not found and cannot install it (need root or password-less sudo)"
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    log "prometheus not found and there is no apt-get to install it with"
    return 1
  fi
  log "installing Debian's prometheus package"
  "${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null \
    && "${run[@]}" env DEBIAN_FRONTEND=noninteractive \
       apt-get install -y -qq --no-install-recommends prometheus </dev/null >/dev/null
}

if [ -n "${EDGESCORE_TEST_PROMETHEUS:-}" ]; then
  log "using the given EDGESCORE_TEST_PROMETHEUS=$EDGESCORE_TEST_PROMETHEUS"
else
  if ! command -v prometheus >/dev/null; then
    install_prometheus || true
  fi
  if command -v prometheus >/dev/null; then
    EDGESCORE_TEST_PROMETHEUS=$(command -v prometheus)
    export EDGESCORE_TEST_PROMETHEUS
    log "$("$EDGESCORE_TEST_PROMETHEUS" --version 2>&1 | head -n 1) at $EDGESCORE_TEST_PROMETHEUS"
  else
    log "WARNING: no prometheus binary; the Prometheus scrape test will be skipped"
  fi
fi

exec "$@"

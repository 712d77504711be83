#!/usr/bin/env bash
# Run a command next to a throwaway local Ray cluster, for the compute plane's Ray tests.
#
#   RAY_BIN=.venv/bin/ray tools/with_ray.sh make test
#
# Starts a head node (no CPUs of its own: it only schedules) and EDGESCORE_RAY_WORKERS worker
# nodes (default 1, each EDGESCORE_RAY_NODE_CPUS CPUs, default 1) as separate raylet processes
# on loopback, a free port, state in a temp dir; exports EDGESCORE_TEST_RAY_ADDRESS, runs the
# command, and always stops the cluster. Ray comes from PyPI with the project (`[ray]` extra,
# part of `[dev]`); if it is missing or does not start, this says so loudly and runs the command
# anyway: the Ray tests then skip (pytest -ra lists why).
set -euo pipefail

log() { echo "with_ray: $*" >&2; }

RAY_BIN=${RAY_BIN:-ray}
WORKERS=${EDGESCORE_RAY_WORKERS:-1}
NODE_CPUS=${EDGESCORE_RAY_NODE_CPUS:-1}
RAYTMP=""

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $((20000 + RANDOM % 20000))
}

start_cluster() {
  command -v "$RAY_BIN" >/dev/null || { log "no '$RAY_BIN' command (pip install ray)"; return 1; }
  RAYTMP=$(mktemp -d /tmp/edgescore-ray.XXXXXX)
  local port i
  port=$(free_port)
  # No dashboard, no usage stats (nothing leaves the machine), loopback only.
  RAY_USAGE_STATS_ENABLED=0 "$RAY_BIN" start --head --node-ip-address 127.0.0.1 --port "$port" \
    --num-cpus 0 --num-gpus 0 --include-dashboard false --disable-usage-stats \
    --temp-dir "$RAYTMP" >"$RAYTMP/head.log" 2>&1 || { tail -n 20 "$RAYTMP/head.log" >&2; return 1; }
  for i in $(seq 1 "$WORKERS"); do
    RAY_USAGE_STATS_ENABLED=0 "$RAY_BIN" start --address "127.0.0.1:$port" \
      --node-ip-address 127.0.0.1 --num-cpus "$NODE_CPUS" --num-gpus 0 \
      --disable-usage-stats >"$RAYTMP/worker-$i.log" 2>&1 \
      || { tail -n 20 "$RAYTMP/worker-$i.log" >&2; return 1; }
  done
  export EDGESCORE_TEST_RAY_ADDRESS="127.0.0.1:$port"
  log "Ray $("$RAY_BIN" --version 2>/dev/null | awk '{print $NF}') at $EDGESCORE_TEST_RAY_ADDRESS:" \
      "a head and $WORKERS worker node(s) of $NODE_CPUS CPU(s)"
}

stop_cluster() {
  if [ -n "$RAYTMP" ]; then
    "$RAY_BIN" stop --force >/dev/null 2>&1 || true
    rm -rf "$RAYTMP"
  fi
}

trap stop_cluster EXIT
trap 'exit 130' INT TERM

if [ -n "${EDGESCORE_TEST_RAY_ADDRESS:-}" ]; then
  log "using the given EDGESCORE_TEST_RAY_ADDRESS"
elif ! start_cluster; then
  stop_cluster
  RAYTMP=""
  log "WARNING: no Ray cluster; the Ray compute tests will be skipped"
fi

"$@"

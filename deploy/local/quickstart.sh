#!/usr/bin/env bash
# Quickstart: Cairn's main job end to end on embedded defaults, on this machine.
#   a local Kubernetes 1.20 control plane (etcd, kube-apiserver, kube-controller-manager),
#   cairn-hub with RocksDB and its default local-directory location (./cairn-data, 127.0.0.1:7443),
#   cairn-agent for the cluster, enrolled with a one-time join token (it gets its own client
#   certificate); then: deploy a demo app, back it up, delete its namespace, restore it, and show
#   what came back.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bash tests/bed/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${CAIRN_CACHE:-$HOME/.cache/cairn}/target}"
cargo build --workspace --bins --locked --quiet
bin="$CARGO_TARGET_DIR/debug"

work="$(mktemp -d /tmp/cairn-quickstart.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { # fail MESSAGE: say why, show the end of every log (the work directory goes with us)
  echo "quickstart failed: $1" >&2
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $(basename "$f")" >&2; tail -15 "$f" >&2; }; done
  exit 1
}
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND…
  local deadline=$((SECONDS + $1)) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then fail "timed out waiting for $what"; fi
    sleep 0.5
  done
}

step "Starting a local Kubernetes control plane"
"$bin/testbed" control-plane quickstart >"$work/control-plane.out" 2>"$work/control-plane.log" &
pids+=($!)
wait_for 120 "the control plane" grep -q '^export KUBECONFIG=' "$work/control-plane.out"
eval "$(grep '^export KUBECONFIG=' "$work/control-plane.out")"
kubectl version 2>/dev/null | grep -i server || true

step "Starting cairn-hub on embedded defaults (data in $work/cairn-data, TLS with its own CA)"
(cd "$work" && exec "$bin/cairn-hub") >"$work/hub.log" 2>&1 &
pids+=($!)
# The hub serves TLS only; on first start it makes its CA, which its clients trust, and token admin
# for its local user, with the CLI configuration (hub, CA, token) readable by that user only.
export CAIRN_CONFIG="$work/cairn-data/admin.conf"
wait_for 30 "the hub" "$bin/cairn" cluster list

step "Enrolling cluster 'local': a one-time join token for its agent"
token="$("$bin/cairn" cluster add local --expires 10m)" || fail "cairn cluster add"
echo "${token:0:40}…"

step "Starting cairn-agent for cluster 'local' (it enrols with the token, then keeps its certificate)"
"$bin/cairn-agent" --join "$token" --state-dir "$work/agent-state" --kubeconfig "$KUBECONFIG" >"$work/agent.log" 2>&1 &
pids+=($!)
wait_for 30 "the agent" sh -c "'$bin/cairn' cluster list | grep -Eq '^local .* connected '"
"$bin/cairn" cluster list

step "Deploying the demo application"
kubectl apply -f deploy/local/demo.yaml
wait_for 60 "the demo's ReplicaSet" sh -c "kubectl -n demo get replicasets -o name | grep -q hello"
kubectl -n demo get deployments,services,configmaps,secrets 2>/dev/null

step "Backing it up"
"$bin/cairn" backup create demo-backup --cluster local --include-namespaces demo --wait || fail "the backup did not complete"

step "Deleting namespace demo"
kubectl delete namespace demo --wait=true
kubectl get namespace demo 2>&1 || true

step "Restoring it"
"$bin/cairn" restore create demo-restore --from-backup demo-backup --wait || fail "the restore did not complete"
"$bin/cairn" restore describe demo-restore --details

step "What came back"
wait_for 60 "the demo's ReplicaSet" sh -c "kubectl -n demo get replicasets -o name | grep -q hello"
kubectl -n demo get deployments,replicasets,services,configmaps,secrets 2>/dev/null
echo
echo "Quickstart done: backup and restore went through the hub, the agent and the local location."

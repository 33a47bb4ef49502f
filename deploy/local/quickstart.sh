#!/usr/bin/env bash
# Quickstart: the main job end to end on embedded defaults, on this machine.
# Installs the test bed, builds Cairn, starts a local Kubernetes control plane.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/bed/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${CAIRN_CACHE:-$HOME/.cache/cairn}/target}"
cargo build --workspace --bins
echo "not yet: hub, agent, backup and restore arrive with the vertical slice (issue 4)."
echo "A local control plane for development: cargo run -p cairn-tests --bin testbed -- control-plane"

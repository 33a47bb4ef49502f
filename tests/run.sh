#!/usr/bin/env bash
# The whole test suite from a bare machine: installs the test bed (cached under ~/.cache/cairn),
# then formatting, lints, and every unit and e2e test against real servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/bed/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${CAIRN_CACHE:-$HOME/.cache/cairn}/target}"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The `cairn` CLI links cairn-proto alone: never the hub, so never RocksDB. (The tree is read whole
# first: a failing `cargo tree` stops the script instead of passing the check.)
cli_tree="$(cargo tree -p cairn-cli -e normal --locked)"
if grep -q rocksdb <<<"$cli_tree"; then
  echo "cairn-cli depends on RocksDB: the cairn CLI must depend on cairn-proto alone, never on cairn-hub" >&2
  echo "(see which crate brings it in: cargo tree -p cairn-cli -e normal -i librocksdb-sys)" >&2
  exit 1
fi
# The e2e tests start the workspace's own binaries (hub, agent, CLI).
cargo build --workspace --bins --locked
# Cairn's images, from the release binaries, for the tests that deploy Cairn on real nodes
# (tests/tests/nodes.rs) as a user would.
cargo build --release -p cairn-agent -p cairn-hub --bins --locked
deploy/images/build.sh "$CARGO_TARGET_DIR/release" "$CARGO_TARGET_DIR/images"
# README's first command must stay true: run the quickstart end to end (quietly unless it fails).
quickstart_log="$(mktemp)"
if ! deploy/local/quickstart.sh >"$quickstart_log" 2>&1; then
  cat "$quickstart_log"; echo "quickstart failed" >&2; exit 1
fi
echo "quickstart: $(tail -1 "$quickstart_log")"
rm -f "$quickstart_log"
# The decoders' property tests (`fuzz_*`) run 1,024 cases each: about 10 s in all (README, "Tests").
PROPTEST_CASES="${PROPTEST_CASES:-1024}" cargo nextest run --workspace --locked --no-fail-fast

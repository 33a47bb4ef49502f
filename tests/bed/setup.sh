#!/usr/bin/env bash
# Installs everything the build and the tests need on a bare Debian machine, reusing
# $CAIRN_CACHE (default ~/.cache/cairn) when it is warm:
#   - build tools: clang/libclang (rocksdb's C++), protoc (gRPC code generation), Rust components;
#   - restic and zstd, the volume benchmark's peer and ceiling;
#   - the Kubernetes control plane and kubelet (tests/bed/k8s.sh), containerd and node images (tests/bed/nodes.sh);
#   - the object-storage servers (tests/bed/storage.sh).
source "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"

apt_install build-essential pkg-config clang libclang-dev protobuf-compiler
# Peers and ceilings of the volume benchmark (`cargo bench --bench volume`).
apt_install restic zstd tar
# The real Prometheus that scrapes the hub in the edge tests.
apt_install prometheus
for component in clippy rustfmt; do
  cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component"
done
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

bash "$here/k8s.sh"
bash "$here/nodes.sh"
bash "$here/storage.sh"
log "test bed ready in $CAIRN_CACHE"

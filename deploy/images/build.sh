#!/usr/bin/env bash
# Builds Cairn's two images from release binaries, as OCI archives, without a registry or a
# container engine (umoci writes the OCI layout):
#   cairn/agent:<version>  — cairn-agent: the cluster agent (deploy/agent.yaml) and, with `node`,
#                            the node agent (deploy/node-agent.yaml);
#   cairn/hub:<version>    — cairn-hub (deploy/hub.yaml).
# Each holds its binary, the shared libraries it links (glibc, libgcc; from this machine, as
# `ldd` lists them) and the CA bundle, nothing else: no shell, no package manager. Both run as uid
# 65532 unless the manifest says otherwise (the node agent runs as uid 0 with a few capabilities,
# see deploy/node-agent.yaml).
#
#   deploy/images/build.sh BIN_DIR OUT_DIR     # BIN_DIR: target/release, say
#
# Load an archive into containerd with
#   ctr -n k8s.io images import --base-name docker.io/cairn/agent OUT_DIR/cairn-agent.tar
# or push it with `skopeo copy oci-archive:OUT_DIR/cairn-agent.tar docker://REGISTRY/cairn/agent:TAG`.
# Needs umoci (Debian: `apt install umoci`) and ca-certificates.
set -euo pipefail
bin_dir="$(cd "$1" && pwd)"
out="$(mkdir -p "$2" && cd "$2" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/oci.sh"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/../../Cargo.toml" | head -1)"
[ -n "$version" ] || { echo "no workspace version in Cargo.toml" >&2; exit 1; }
bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$bundle" ] || { echo "$bundle missing: install ca-certificates" >&2; exit 1; }

# image BINARY: writes $out/BINARY.tar, image tag $version, entrypoint the binary.
image() {
  local binary="$bin_dir/$1" work root lib
  [ -x "$binary" ] || { echo "$binary not found: cargo build --release first" >&2; exit 1; }
  work="$(mktemp -d)"
  root="$work/rootfs"
  # The image's / as a root filesystem's (mktemp's 0700 would lock out every uid but 0).
  install -d -m 755 "$root"
  install -D -m 755 "$binary" "$root/usr/local/bin/$1"
  # The loader and every library the binary links, at the paths the binary looks for them.
  for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    install -D -m 755 "$(readlink -f "$lib")" "$root$lib"
  done
  install -D -m 644 "$bundle" "$root$bundle"
  install -d -m 1777 "$root/tmp"

  oci_image "$root" "$out/$1.tar" "$version" 65532:65532 "/usr/local/bin/$1"
  rm -rf "$work"
  echo "$out/$1.tar: ${1/-//}:$version ($(du -h "$out/$1.tar" | cut -f1))"
}

image cairn-agent
image cairn-hub

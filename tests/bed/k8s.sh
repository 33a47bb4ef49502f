#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, and the node's kubelet and kube-scheduler, v1.20.2
# from Debian bookworm's `kubernetes` source package, once, into $CAIRN_CACHE/k8s-<version>/bin,
# and links etcd from Debian's etcd-server package. Idempotent: a warm cache returns at once.
source "$(dirname "$0")/lib.sh"

out="$CAIRN_CACHE/k8s-$K8S_VERSION"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
built=1
for b in "${binaries[@]}"; do [ -x "$out/bin/$b" ] || built=""; done
if [ -n "$built" ]; then
  apt_install etcd-server
else
  apt_install etcd-server golang-1.19-go rsync dpkg-dev golang-github-modern-go-reflect2-dev ca-certificates

  work="$CAIRN_CACHE/k8s-build"
  rm -rf "$work"; mkdir -p "$work/src" "$work/gopath/src/k8s.io"
  fetch_k8s_source "$work/src"
  (cd "$work/src" && dpkg-source --no-check -x ./*.dsc tree >/dev/null)
  tree="$work/src/tree"

  # reflect2 1.0.1 (vendored) faults under Go >= 1.18 on the first custom resource: use Debian's 1.0.2.
  log "replacing vendored github.com/modern-go/reflect2 with Debian's"
  r2="$tree/vendor/github.com/modern-go/reflect2"
  rm -f "$r2"/*.go "$r2"/*.s
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2"/
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2"/ 2>/dev/null || true
  rm -f "$r2"/*_test.go

  ln -s "$tree" "$work/gopath/src/k8s.io/kubernetes"
  log "building ${binaries[*]} (about 10 minutes on 2 cores)"
  (cd "$work/gopath/src/k8s.io/kubernetes" && \
    env PATH="/usr/lib/go-1.19/bin:$PATH" GOPATH="$work/gopath" GOFLAGS= GO111MODULE= CGO_ENABLED=0 \
      GOCACHE="$work/gocache" KUBE_BUILD_PLATFORMS=linux/amd64 \
      make WHAT="${binaries[*]/#/cmd/}" >"$work/build.log" 2>&1) \
    || { tail -40 "$work/build.log" >&2; exit 1; }
  mkdir -p "$out/bin"
  for b in "${binaries[@]}"; do
    install -m 755 "$(find "$tree/_output" -type f -name "$b" -path '*bin*' | head -1)" "$out/bin/$b"
  done
  rm -rf "$work"
  log "built $("$out/bin/kube-apiserver" --version)"
fi

for b in "${binaries[@]}"; do ln -sf "$out/bin/$b" "$CAIRN_BIN/$b"; done
ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$CAIRN_BIN/etcd"

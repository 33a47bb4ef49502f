#!/usr/bin/env bash
# What a real node needs besides the kubelet (k8s.sh builds it): containerd, runc and the CNI
# plugins from Debian, and the two images every node imports, built from scratch because no
# registry is reachable:
#   - local.test/pause:3.4 — the sandbox image: the static `pause` built from the Kubernetes tree's
#     build/pause/linux/pause.c (the same Debian source package as the control plane);
#   - local.test/busybox:1 — Debian's busybox-static with its applets, for test applications.
# OCI archives in $CAIRN_CACHE/images (`ctr images import` reads them). Idempotent.
source "$(dirname "$0")/lib.sh"

# ca-certificates: the bundle Cairn's images carry (deploy/images/build.sh).
apt_install containerd runc containernetworking-plugins umoci busybox-static gcc libc6-dev iproute2 dpkg-dev ca-certificates

images="$CAIRN_CACHE/images"
mkdir -p "$images"
pause="$CAIRN_CACHE/k8s-$K8S_VERSION/bin/pause"
if [ ! -x "$pause" ]; then
  work="$(mktemp -d)"
  fetch_k8s_source "$work"
  tar -xf "$work"/kubernetes_*.orig.tar.* -C "$work" --wildcards '*build/pause/linux/pause.c'
  mkdir -p "$(dirname "$pause")"
  gcc -Os -static -Wall -DVERSION="$K8S_VERSION" -o "$pause" "$(find "$work" -name pause.c | head -1)"
  rm -rf "$work"
  log "built the sandbox's pause from Kubernetes $K8S_VERSION"
fi

source "$(dirname "$0")/../../deploy/images/oci.sh"

if [ ! -f "$images/pause.tar" ]; then
  root="$(mktemp -d)"
  install -D -m 755 "$pause" "$root/pause"
  chmod 755 "$root"  # the image's /: mktemp's 0700 would lock out every uid but 0
  oci_image "$root" "$images/pause.tar" 3.4 0:0 /pause
  log "image local.test/pause:3.4 in $images/pause.tar"
  rm -rf "$root"
fi

if [ ! -f "$images/busybox.tar" ]; then
  root="$(mktemp -d)"
  install -D -m 755 /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  mkdir -p "$root/tmp" "$root/data" && chmod 1777 "$root/tmp" && chmod 755 "$root"
  oci_image "$root" "$images/busybox.tar" 1 0:0 /bin/sh
  log "image local.test/busybox:1 in $images/busybox.tar"
  rm -rf "$root"
fi

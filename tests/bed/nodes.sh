#!/usr/bin/env bash
# What a real node needs besides the kubelet (k8s.sh builds it): containerd, runc and the CNI
# plugins from Debian, and the two images every node imports, built from scratch because no
# registry is reachable:
#   - local.test/pause:3.4 — the sandbox image: the static `pause` built from the Kubernetes tree's
#     build/pause/linux/pause.c (the same Debian source package as the control plane);
#   - local.test/busybox:1 — Debian's busybox-static with its applets, for test applications.
# OCI archives in $CAIRN_CACHE/images (`ctr images import` reads them). Idempotent.
source "$(dirname "$0")/lib.sh"

apt_install containerd runc containernetworking-plugins umoci busybox-static gcc libc6-dev iproute2 dpkg-dev

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

# image NAME TAG ROOTFS_DIR ENTRYPOINT_JSON: an OCI archive of one layer holding ROOTFS_DIR.
image() {
  local name="$1" tag="$2" rootfs="$3" entrypoint="$4" work
  work="$(mktemp -d)"
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:$tag"
  umoci unpack --image "$work/oci:$tag" "$work/bundle" >/dev/null
  chmod 755 "$rootfs"  # the image's /: mktemp's 0700 would lock out every uid but 0
  cp -a "$rootfs/." "$work/bundle/rootfs/"
  umoci repack --image "$work/oci:$tag" "$work/bundle"
  umoci config --image "$work/oci:$tag" --config.entrypoint "$entrypoint" \
    --config.workingdir / --config.env PATH=/bin
  umoci gc --layout "$work/oci"
  tar -C "$work/oci" -cf "$images/$name.tar.tmp" .
  mv "$images/$name.tar.tmp" "$images/$name.tar"
  rm -rf "$work"
  log "image local.test/$name:$tag in $images/$name.tar"
}

if [ ! -f "$images/pause.tar" ]; then
  root="$(mktemp -d)"
  install -D -m 755 "$pause" "$root/pause"
  image pause 3.4 "$root" /pause
  rm -rf "$root"
fi

if [ ! -f "$images/busybox.tar" ]; then
  root="$(mktemp -d)"
  install -D -m 755 /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  mkdir -p "$root/tmp" "$root/data" && chmod 1777 "$root/tmp"
  image busybox 1 "$root" /bin/sh
  rm -rf "$root"
fi

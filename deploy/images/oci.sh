# oci_image ROOTFS ARCHIVE TAG USER ENTRYPOINT: writes ARCHIVE, an OCI image archive (one layer
# holding directory ROOTFS, its / included) tagged TAG, run as USER (uid:gid) with ENTRYPOINT, with
# umoci and no container engine. `ctr images import --base-name NAME ARCHIVE` loads it as NAME:TAG.
# Sourced, not run.
oci_image() {
  local rootfs="$1" archive="$2" tag="$3" user="$4" entrypoint="$5" work
  work="$(mktemp -d)"
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:$tag"
  umoci unpack --image "$work/oci:$tag" "$work/bundle" >/dev/null
  cp -a "$rootfs/." "$work/bundle/rootfs/"
  umoci repack --image "$work/oci:$tag" "$work/bundle"
  umoci config --image "$work/oci:$tag" --config.entrypoint "$entrypoint" --config.user "$user" \
    --config.workingdir / --config.env PATH=/usr/local/bin:/bin \
    --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
  umoci gc --layout "$work/oci"
  tar -C "$work/oci" -cf "$archive.tmp" .
  mv "$archive.tmp" "$archive"
  rm -rf "$work"
}

#!/usr/bin/env bash
# Installs the object-storage servers the tests start on loopback, each from its registry:
# moto (S3) and fake-gcs-server (GCS) from PyPI into a venv, azurite (Azure Blob) from npm.
# Links them under $CAIRN_BIN. Idempotent: re-installs only when the pinned lists change.
source "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")" && pwd)"

apt_install openssl curl
command -v node >/dev/null || apt_install nodejs npm

venv="$CAIRN_CACHE/venv"
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp"; then
  log "creating Python venv with $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

npm_dir="$CAIRN_CACHE/npm"
if ! cmp -s "$here/package.json" "$npm_dir/package.json" || [ ! -x "$npm_dir/node_modules/.bin/azurite-blob" ]; then
  log "installing azurite from npm"
  rm -rf "$npm_dir"; mkdir -p "$npm_dir"
  cp "$here/package.json" "$npm_dir/"
  (cd "$npm_dir" && npm install --silent --no-audit --no-fund >/dev/null)
fi

gcs=$(find "$venv" -path '*fake-gcs-server/bin/*' -type f -name 'fake-gcs-server*' | head -1)
[ -n "$gcs" ] || { log "fake-gcs-server binary not found in the wheel"; exit 1; }
chmod +x "$gcs"

ln -sf "$venv/bin/moto_server" "$CAIRN_BIN/moto_server"
ln -sf "$npm_dir/node_modules/.bin/azurite-blob" "$CAIRN_BIN/azurite-blob"
ln -sf "$gcs" "$CAIRN_BIN/fake-gcs-server"

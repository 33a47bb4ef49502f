# Shared shell settings for the test-bed scripts: where the cache lives and how to log.
# Sourced, not run.
set -euo pipefail

# Everything expensive and reproducible lives here, outside any clone, so a warm CI run reuses it.
CAIRN_CACHE="${CAIRN_CACHE:-$HOME/.cache/cairn}"
# One folder of stable names (symlinks) for every server binary the tests start.
CAIRN_BIN="$CAIRN_CACHE/bin"
K8S_VERSION="1.20.2"
K8S_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
mkdir -p "$CAIRN_CACHE" "$CAIRN_BIN"

log() { printf '[testbed %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# apt-get update at most once per script run.
APT_UPDATED=""
apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

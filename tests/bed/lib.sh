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

# Downloads Debian's `kubernetes` source package (the version above) into directory $1, with deb-src
# entries derived from the machine's own apt sources when it has none.
fetch_k8s_source() {
  # deb-src entries derived from the machine's own apt sources: same mirrors, same suites.
  local src_list tmp
  src_list=/etc/apt/sources.list.d/cairn-deb-src.sources
  if [ ! -f "$src_list" ] && ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "deriving deb-src entries from the existing apt sources"
    tmp=$(mktemp)
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      # deb822 stanzas: keep only those of type deb, relabelled deb-src.
      awk 'BEGIN{RS="";ORS="\n\n"} /(^|\n)Types:[^\n]*deb([ \n]|$)/ {sub(/Types:[^\n]*/,"Types: deb-src"); print}' "$f" >> "$tmp"
    done
    if [ -f /etc/apt/sources.list ]; then
      grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | while read -r line; do
        # one-line form converted to a deb822 stanza so the derived file has one format
        set -- $line; shift; opts=""
        if [[ "$1" == \[* ]]; then opts="$1"; shift; fi
        uri="$1"; suite="$2"; shift 2
        printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n\n' "$uri" "$suite" "$*" >> "$tmp"
      done
    fi
    $SUDO install -m 644 "$tmp" "$src_list"; rm -f "$tmp"
    $SUDO apt-get update -qq
  fi
  log "fetching Debian source package kubernetes=$K8S_DEB_VERSION"
  (cd "$1" && apt-get source -qq --download-only "kubernetes=$K8S_DEB_VERSION" >/dev/null)
}

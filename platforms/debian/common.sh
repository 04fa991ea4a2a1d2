# Shared helpers for the Debian set-up scripts (sourced, not run).
# Everything slow to make lives in VKTRAIN_CACHE (outside the clone) so a fresh clone reuses it.
set -euo pipefail

VKTRAIN_CACHE=${VKTRAIN_CACHE:-/var/cache/vktrain}
export VKTRAIN_CACHE
mkdir -p "$VKTRAIN_CACHE"

log() { printf '[vktrain-setup] %s\n' "$*" >&2; }
die() { printf '[vktrain-setup] error: %s\n' "$*" >&2; exit 1; }

# Runs one set-up step with its output in a log; on failure names the step, shows the end of the log and says what
# to do, instead of leaving a bare apt or compiler error on the screen.
#   step "what the step does" "what to do when it fails" COMMAND...
step() {
  local what=$1 hint=$2 rc=0 logf
  shift 2
  mkdir -p "$VKTRAIN_CACHE/logs"
  logf="$VKTRAIN_CACHE/logs/$(printf '%s' "$what" | tr -c 'A-Za-z0-9._-' '-' | cut -c1-80).log"
  "$@" >"$logf" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    {
      printf '[vktrain-setup] error: set-up step failed (exit %d): %s\n' "$rc" "$what"
      printf '[vktrain-setup] its last lines (the whole log: %s):\n' "$logf"
      tail -n 15 "$logf" | sed 's/^/    /'
      printf '[vktrain-setup] what to do: %s\n' "$hint"
    } >&2
    exit 1
  fi
}
apt_hint="run the same apt-get command with -s (simulate) to see which package apt will not take and from which suite; \
packages from bookworm-backports need -t bookworm-backports. Check that apt-get update works (network, mirror)."

need_root() {
  [ "$(id -u)" = 0 ] || die "this step installs packages and must run as root (try: sudo $0)"
}

# The Debian mirror this machine already uses, read from its own apt sources (no host is written
# into the repository). Prints a URI such as http://<mirror>/debian.
debian_mirror() {
  local uri=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    # deb822 stanzas end at a blank line or at the end of a file (a file need not end with a blank line).
    uri=$(awk '
      function flush() { if (!found && suites ~ / bookworm / && uris != "") { print uris; found = 1 } uris = ""; suites = "" }
      FNR == 1 { flush() }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/ { uris = $2 }
      /^Suites:/ { $1 = ""; suites = $0 " " }
      END { flush() }
    ' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ && / bookworm( |$)/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
      /etc/apt/sources.list | head -n1)
  fi
  [ -n "$uri" ] || die "could not find a Debian bookworm mirror in /etc/apt/sources.list*"
  printf '%s\n' "${uri%/}"
}

# A keyring that knows Debian's archive keys (bookworm's debian-archive-keyring carries trixie's).
debian_keyring() {
  local k=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$k" ] || die "missing $k (apt-get install debian-archive-keyring)"
  printf '%s\n' "$k"
}

apt_updated_marker="$VKTRAIN_CACHE/.apt-updated"
apt_update_once() {
  # One apt-get update per set-up run is enough; later runs skip it unless a package is missing.
  if [ ! -f "$apt_updated_marker.$$" ]; then
    log "apt-get update"
    step "apt-get update" "check the network and the Debian mirror in /etc/apt/sources.list.d/ (apt-get update must work)" \
      apt-get update
    touch "$apt_updated_marker.$$"
  fi
}
cleanup_apt_marker() { rm -f "$apt_updated_marker.$$"; }
trap cleanup_apt_marker EXIT

# apt's explanation of an impossible install, read for what must come from bookworm-backports instead: a dependency
# "not going to be installed" or "not installable" because only backports has the version asked for, and a package
# whose bookworm version pins a library that backports already replaced ("libdw1 : Depends: libelf1 (= 0.188-2.1) but
# 0.192-4~bpo12+1 is to be installed"). Prints package names, one a line.
backports_needed() {
  awk '
    /^ [^ ]+ : Depends:/ { pkg = $1 }
    /Depends: / {
      match($0, /Depends: [^ ]+/); dep = substr($0, RSTART + 9, RLENGTH - 9)
      if ($0 ~ /but it is not (going to be installed|installable)/) print dep
      else if ($0 ~ /but [^ ]*~bpo[^ ]* is to be installed/) print pkg
    }' | sort -u
}

# apt-get install of PACKAGES (apt's "name", "name:arch" or "name/release" forms) after a simulation: when apt finds
# the request impossible only because some packages must come from bookworm-backports, exactly those are taken from
# there (name/bookworm-backports) and the rest from bookworm. `-t bookworm-backports` would take every dependency from
# backports instead (libelf1 with Mesa, say), and a bookworm package installed later (clang's libdw1) then fails.
apt_resolve_install() {
  local want=("$@") out extra p i
  apt_update_once
  for i in 1 2 3 4 5 6; do
    out=$(apt-get install -s --no-install-recommends "${want[@]}" 2>&1) && break
    extra=$(printf '%s\n' "$out" | backports_needed)
    [ -n "$extra" ] || break
    for p in $extra; do
      case " ${want[*]} " in *" $p/bookworm-backports "*) extra="" ;; *) want+=("$p/bookworm-backports") ;; esac
    done
    [ -n "$extra" ] || break
    log "taking from bookworm-backports (bookworm's versions do not fit): $extra"
  done
  step "apt-get install ${want[*]}" "$apt_hint" \
    env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${want[@]}"
}

# Installs the named packages that are not installed yet, from bookworm (see apt_resolve_install).
apt_install() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  apt_resolve_install "${missing[@]}"
}

# Installs the named packages from bookworm-backports, with only the dependencies that need it from there too.
apt_install_backports() {
  local p want=()
  for p in "$@"; do want+=("$p/bookworm-backports"); done
  log "apt-get install ${want[*]}"
  apt_resolve_install "${want[@]}"
}

# A private apt configuration under DIR (lists, archives, an empty status) reading only this machine's Debian mirror
# for SUITES of TYPES ("deb" or "deb deb-src") and ARCH, so packages of another release or architecture can be
# downloaded without touching the host's apt state. Sets the array PRIVATE_APT: the options to hand to apt-get.
#   private_apt DIR ARCH TYPES SUITES
private_apt() {
  local dir=$1 arch=$2 types=$3 suites=$4 mirror keyring
  mirror=$(debian_mirror) || exit 1
  keyring=$(debian_keyring) || exit 1
  mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/parts"
  cat >"$dir/parts/private.sources" <<SRC
Types: $types
URIs: $mirror
Suites: $suites
Components: main
Signed-By: $keyring
SRC
  : >"$dir/empty.list"
  : >"$dir/status"
  PRIVATE_APT=(-o "Dir::Etc::SourceList=$dir/empty.list" -o "Dir::Etc::SourceParts=$dir/parts"
               -o "Dir::State::Lists=$dir/lists" -o "Dir::State::status=$dir/status" -o "Dir::Cache=$dir"
               -o "Dir::Cache::archives=$dir/archives" -o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
               -o "APT::Install-Recommends=0" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
}

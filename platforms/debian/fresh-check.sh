#!/usr/bin/env bash
# The fresh-machine check: what a new user sees. Makes a clean Debian bookworm root with debootstrap (minbase: no
# compiler, no cmake, no Python, nothing installed by hand; this machine's Debian mirror, keyring and apt settings),
# copies a clean clone of this repository's HEAD into it, and runs the README's two commands there, with /proc,
# /sys and /dev bind-mounted and its own, empty /var/cache/vktrain (nothing of this machine's cache is shared).
#
#   platforms/debian/fresh-check.sh [--quick] [--keep] [--root DIR] [--log DIR]
#     (default)  bash scripts/demo.sh (5 epochs), then bash scripts/test.sh: the whole suite, as CI runs it
#     --quick    the full set-up and build of both commands, demo.sh --epochs 1, and every test except the
#                sanitizer rebuild and the fuzzing (the two that rebuild the same code with the same packages)
#     --keep     keep the root afterwards (default: deleted when the check passes)
#     --root DIR where to make the root (default /var/tmp/vktrain-fresh-root; deleted first if it exists)
#     --log DIR  where the logs go (default /var/tmp/vktrain-fresh-check)
#
# Needs root and the network (the Debian mirror). Commits only: uncommitted changes are not in the clone.
# Prints the time of every stage and exits non-zero, naming the stage, when one fails.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

quick=0 keep=0 root=/var/tmp/vktrain-fresh-root logdir=/var/tmp/vktrain-fresh-check
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --keep) keep=1 ;;
    --root) root=${2:?--root needs a folder}; shift ;;
    --log) logdir=${2:?--log needs a folder}; shift ;;
    *) die "fresh-check.sh: unknown option $1 (see the comment at the top of $0)" ;;
  esac
  shift
done
case "$root" in /|/usr|/var|/var/cache/vktrain*) die "refusing --root $root" ;; esac
mkdir -p "$logdir"
git -C "$src" diff --quiet HEAD -- || log "note: uncommitted changes in $src are not part of the check (it clones HEAD)"
commit=$(git -C "$src" rev-parse HEAD) # fixed now: commits made while the check runs are not part of it

mounts=()
unmount_all() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" || true; done
  mounts=()
}
finish() {
  unmount_all
  cleanup_apt_marker
}
trap finish EXIT

t_start=$(date +%s)
stage_start=$t_start
summary=()
stage_done() {
  local now
  now=$(date +%s)
  summary+=("$(printf '%-58s %5d s' "$1" $((now - stage_start)))")
  log "fresh-check: $1 done in $((now - stage_start)) s"
  stage_start=$now
}
print_summary() {
  printf '\nfresh-check of %s (%s)\n' "${commit:0:10}" "$([ $quick = 1 ] && echo quick || echo full)"
  printf '  %s\n' "${summary[@]}"
  printf '  %-58s %5d s\n' "total" $(($(date +%s) - t_start))
}
# fail STAGE LOG: names the failed stage and shows the end of its log.
fail() {
  printf '\n[vktrain-setup] fresh-check FAILED at: %s\n' "$1" >&2
  printf '[vktrain-setup] last lines of %s:\n' "$2" >&2
  tail -n 40 "$2" | sed 's/^/    /' >&2
  print_summary
  exit 1
}

# 1. A clean bookworm root: minbase, this machine's mirror and keyring.
if mountpoint -q "$root/proc" 2>/dev/null; then die "$root/proc is still mounted (another fresh-check running?)"; fi
rm -rf "$root"
mirror=$(debian_mirror)
log "fresh-check: debootstrap bookworm (minbase) into $root from $mirror"
debootstrap --variant=minbase --keyring="$(debian_keyring)" bookworm "$root" "$mirror" >"$logdir/debootstrap.log" 2>&1 \
  || fail "debootstrap of a clean bookworm root" "$logdir/debootstrap.log"
# What a new machine of this kind has: its apt sources (bookworm, -updates, -security on the same mirror) and apt
# settings, its DNS resolver, its local certificate authorities. Nothing else of this machine's: no packages, no apt lists, no /var/cache/vktrain.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
for f in /etc/apt/apt.conf.d/*; do
  case "$(basename "$f")" in docker-*) ;; *) cp "$f" "$root/etc/apt/apt.conf.d/" ;; esac
done
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# The machine's local certificate authorities (a sandbox's or company's HTTPS proxy): part of its network, like the
# resolver. The root's ca-certificates package, installed by setup-host.sh, adds them to its store.
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -rL /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
[ ! -e "$root/var/cache/vktrain" ] || die "the new root already has /var/cache/vktrain"
stage_done "debootstrap bookworm (minbase)"

# 2. A clean clone of HEAD. git is not in the root (a user who cloned has it; the scripts must not need it).
{ git clone -q --no-local --no-hardlinks --no-checkout "$src" "$root/root/vktrain" \
    && git -C "$root/root/vktrain" checkout -q "$commit"; } >"$logdir/clone.log" 2>&1 \
  || fail "git clone of $src at $commit" "$logdir/clone.log"
rm -rf "$root/root/vktrain/.git/hooks"
stage_done "clean clone of ${commit:0:10}"

bind() {
  mkdir -p "$root$1"
  mount --bind "$1" "$root$1"
  mounts+=("$root$1")
}
# The root a mount point of its own, as / is on a real machine (run-in-root.sh's `unshare --propagation private`
# fails with "Invalid argument" in a chroot whose / is not one); the other mounts go on top of it.
mount --bind "$root" "$root"
mounts+=("$root")
bind /proc
bind /sys
bind /dev
bind /dev/pts
mountpoint -q /dev/shm && bind /dev/shm
in_fresh_root() {
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 TERM=dumb /bin/bash -c 'cd /root/vktrain && "$@"' bash "$@"
}

# 3. The README's first command: set-up, build, training on the default device.
demo_args=()
[ $quick = 0 ] || demo_args=(--epochs 1)
log "fresh-check: bash scripts/demo.sh ${demo_args[*]} (log: $logdir/demo.log)"
in_fresh_root bash scripts/demo.sh "${demo_args[@]}" >"$logdir/demo.log" 2>&1 \
  || fail "bash scripts/demo.sh ${demo_args[*]}" "$logdir/demo.log"
grep -E 'test accuracy|test_accuracy' "$logdir/demo.log" | tail -n 1 || true
stage_done "bash scripts/demo.sh ${demo_args[*]}"

# 4. The README's second command: all the test set-up, the build, the suite.
test_args=()
[ $quick = 0 ] || test_args=(-E '^(sanitizers|fuzz)\.')
log "fresh-check: bash scripts/test.sh ${test_args[*]} (log: $logdir/test.log)"
in_fresh_root bash scripts/test.sh "${test_args[@]}" >"$logdir/test.log" 2>&1 \
  || fail "bash scripts/test.sh ${test_args[*]}" "$logdir/test.log"
grep -E 'tests passed|Total Test time' "$logdir/test.log" | tail -n 2 || true
stage_done "bash scripts/test.sh ${test_args[*]}"

unmount_all
if [ $keep = 0 ]; then
  rm -rf "$root"
fi
print_summary
echo "fresh-check PASSED (logs in $logdir)"

#!/usr/bin/env bash
# run-in-root.sh DIR COMMAND...: runs COMMAND (from the current directory if it is inside DIR) inside the trixie root (made by make-trixie-root.sh) with
# DIR (a host folder, typically the build folder), the Fashion-MNIST data and the fortunes texts bind-mounted at the same
# paths, so host-built binaries run against Mesa 26.1 lavapipe. Mounts are undone on exit.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root
# Each run gets its own mount namespace, so concurrent runs (parallel ctest, several build folders) never
# unmount each other's binds.
if [ -z "${VKTRAIN_ROOT_NAMESPACE:-}" ] && command -v unshare >/dev/null; then
  VKTRAIN_ROOT_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$@"
fi
[ $# -ge 2 ] || die "usage: run-in-root.sh DIR COMMAND..."
root="$VKTRAIN_CACHE/trixie-root"
[ -f "$root/.vktrain-complete-v1" ] || die "no trixie root at $root (run make-trixie-root.sh)"
dir=$(realpath "$1"); shift
# Run from the caller's directory when it lies inside DIR (so relative paths work), else from DIR.
workdir=$(pwd -P)
case "$workdir/" in "$dir"/*) ;; *) workdir=$dir ;; esac

mounts=()
unmount_all() {
  local i
  for ((i=${#mounts[@]}-1; i>=0; i--)); do umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" || true; done
  cleanup_apt_marker
}
trap unmount_all EXIT
bind() {
  local src=$1 dst="$root$1"
  [ -e "$src" ] || return 0
  mkdir -p "$dst"
  mountpoint -q "$dst" && return 0
  mount --bind "$src" "$dst"
  mounts+=("$dst")
}
bind "$dir"
bind /usr/share/datasets
bind /usr/share/games
bind /proc
bind /dev
bind /tmp

chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  ${VK_LOADER_DEBUG:+VK_LOADER_DEBUG=$VK_LOADER_DEBUG} \
  $(env | grep -E '^(VKTRAIN_|GTEST_)[A-Z_]*=' | tr '\n' ' ') \
  /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"

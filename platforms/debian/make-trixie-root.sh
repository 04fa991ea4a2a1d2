#!/usr/bin/env bash
# The second test device: Mesa 26.1 lavapipe (VK_KHR_cooperative_matrix, 8x8x8 fp16) and the current
# Khronos validation layer, inside a minimal Debian trixie root made with debootstrap (idempotent, root).
# Host-built binaries run in it unchanged (see run-in-root.sh). Prints the root's path on its last line.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

root="$VKTRAIN_CACHE/trixie-root"
stamp="$root/.vktrain-complete-v1"
if [ -f "$stamp" ]; then
  printf '%s\n' "$root"
  exit 0
fi
command -v debootstrap >/dev/null || apt_install -- debootstrap

mirror=$(debian_mirror)
if [ ! -x "$root/usr/bin/apt-get" ]; then
  rm -rf "$root"
  log "debootstrap trixie into $root (about 30 s)"
  debootstrap --variant=minbase --keyring="$(debian_keyring)" trixie "$root" "$mirror" >"$VKTRAIN_CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$VKTRAIN_CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $VKTRAIN_CACHE/debootstrap.log)"; }
fi

cat >"$root/etc/apt/sources.list.d/vktrain.sources" <<SRC
Types: deb
URIs: $mirror
Suites: trixie trixie-updates trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
rm -f "$root/etc/apt/sources.list"

log "installing Mesa lavapipe from trixie-backports and the validation layer in the root"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  apt-get update -qq
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends -t trixie-backports \
  mesa-vulkan-drivers libvulkan1 vulkan-validationlayers vulkan-tools >/dev/null
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin apt-get clean

v=$(chroot "$root" dpkg-query -W -f='${Version}' mesa-vulkan-drivers)
dpkg --compare-versions "$v" ge 26.1 || die "trixie root has mesa-vulkan-drivers $v; need >= 26.1 for cooperative matrix"
log "trixie root ready: mesa-vulkan-drivers $v"
touch "$stamp"
printf '%s\n' "$root"

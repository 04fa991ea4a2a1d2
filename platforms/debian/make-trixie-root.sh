#!/usr/bin/env bash
# The second test device: Mesa 26.1 lavapipe (VK_KHR_cooperative_matrix, 8x8x8 fp16) and the current
# Khronos validation layer, inside a minimal Debian trixie root made with debootstrap (idempotent, root).
# Host-built binaries run in it unchanged (see run-in-root.sh). Prints the root's path on its last line.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

root="$VKTRAIN_CACHE/trixie-root"
stamp="$root/.vktrain-complete-v1"
# Mesa and the layer from trixie-backports; python3-safetensors/numpy read our checkpoints in a test; host-built
# binaries that can read SentencePiece tokenizers need libsentencepiece.so.0 (trixie's 0.2.0, the same soname), and
# those that decode images libpng16.so.16 and libjpeg.so.62 (trixie's libpng 1.6.48 and libjpeg-turbo 2.1.5).
packages=(mesa-vulkan-drivers libvulkan1 vulkan-validationlayers vulkan-tools python3-safetensors python3-numpy
  libsentencepiece0 libpng16-16t64 libjpeg62-turbo)
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
missing_in_root() {
  local p
  for p in "${packages[@]}"; do
    in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 0
  done
  return 1
}
if [ -f "$stamp" ] && ! missing_in_root; then
  printf '%s\n' "$root"
  exit 0
fi
command -v debootstrap >/dev/null || apt_install debootstrap

mirror=$(debian_mirror)
if [ ! -x "$root/usr/bin/apt-get" ]; then
  rm -rf "$root"
  log "debootstrap trixie into $root (about 30 s)"
  step "debootstrap of a trixie root into $root" \
    "check the network and that the mirror $mirror serves trixie; delete $root and run again" \
    debootstrap --variant=minbase --keyring="$(debian_keyring)" trixie "$root" "$mirror"
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
step "apt-get update in the trixie root ($root)" "check the network and that the mirror $mirror serves trixie and trixie-backports" \
  in_root apt-get update
step "installing ${packages[*]} from trixie-backports in the trixie root" \
  "run chroot $root apt-get install -s -t trixie-backports ${packages[*]} to see which dependency apt will not take" \
  in_root apt-get install -y --no-install-recommends -t trixie-backports "${packages[@]}"
in_root apt-get clean

v=$(chroot "$root" dpkg-query -W -f='${Version}' mesa-vulkan-drivers)
dpkg --compare-versions "$v" ge 26.1 || die "trixie root has mesa-vulkan-drivers $v; need >= 26.1 for cooperative matrix"
log "trixie root ready: mesa-vulkan-drivers $v"
touch "$stamp"
printf '%s\n' "$root"

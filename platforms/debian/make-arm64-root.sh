#!/usr/bin/env bash
# A Debian trixie arm64 file tree with Mesa 26.1 lavapipe from trixie-backports, for running aarch64 binaries under
# qemu-user with `-L ROOT` (idempotent, root; about 30 s and 250 MB in $VKTRAIN_CACHE/arm64-trixie-root). Nothing in
# it is executed while it is made: debootstrap's first stage unpacks the base system, and the Vulkan packages are
# downloaded with a private apt configuration for arm64 and unpacked. That lavapipe lists VK_KHR_cooperative_matrix
# with its cooperativeMatrix feature bit off (x86-64's has it on), so vktrain must treat it as a no-coopmat device.
# Prints the root's path on its last line.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

root="$VKTRAIN_CACHE/arm64-trixie-root"
stamp="$root/.vktrain-complete-v1"
if [ -f "$stamp" ]; then
  printf '%s\n' "$root"
  exit 0
fi
apt_install debootstrap
mirror=$(debian_mirror)
rm -rf "$root" "$root.apt"
log "unpacking a trixie arm64 base (debootstrap first stage)"
step "debootstrap (first stage) of a trixie arm64 base into $root" \
  "check the network and that the mirror $mirror serves trixie for arm64; delete $root and run again" \
  debootstrap --foreign --arch=arm64 --variant=minbase --keyring="$(debian_keyring)" trixie "$root" "$mirror"

aptdir="$root.apt"
private_apt "$aptdir" arm64 deb "trixie trixie-backports"
aptopt=("${PRIVATE_APT[@]}")
log "downloading arm64 Mesa lavapipe from trixie-backports"
step "apt-get update of the private arm64 trixie configuration ($aptdir)" \
  "check the network and that the mirror $mirror serves trixie-backports for arm64" apt-get "${aptopt[@]}" update
step "downloading arm64 mesa-vulkan-drivers from trixie-backports" "$apt_hint" \
  apt-get "${aptopt[@]}" install -y --download-only -t trixie-backports \
  mesa-vulkan-drivers libvulkan1 libc6 libstdc++6 zlib1g
for deb in "$aptdir"/archives/*.deb; do dpkg-deb -x "$deb" "$root"; done
rm -rf "$aptdir"
lvp="$root/usr/lib/aarch64-linux-gnu/libvulkan_lvp.so"
[ -f "$lvp" ] || die "arm64 lavapipe missing in $root"
touch "$stamp"
log "arm64 trixie root ready: Mesa $(ls "$root"/usr/share/doc/mesa-vulkan-drivers/ >/dev/null 2>&1 && zcat "$root"/usr/share/doc/mesa-vulkan-drivers/changelog.Debian.gz | head -n1 | grep -oE '\([^)]*\)')"
printf '%s\n' "$root"

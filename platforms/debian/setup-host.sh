#!/usr/bin/env bash
# Host packages for building and running vktrain on Debian bookworm (idempotent, root).
# - build tools, zlib, nlohmann-json (header-only), GoogleTest, SentencePiece, libpng and libjpeg-turbo (image
#   folders), the Fashion-MNIST data set, the fortunes text corpus, the Vulkan loader
# - Mesa lavapipe from bookworm-backports (fp16, 16-bit storage; no cooperative matrix)
# Headers new enough for VK_KHR_cooperative_matrix and glslang 15 come from fetch-deps.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

apt_install build-essential cmake ninja-build pkg-config python3 zlib1g-dev nlohmann-json3-dev libgtest-dev libsentencepiece-dev \
  libpng-dev libjpeg62-turbo-dev \
  libvulkan1 vulkan-tools dataset-fashion-mnist fortunes debootstrap ca-certificates xz-utils dpkg-dev

# bookworm-backports, on the same mirror and keyring as the machine's own sources.
bp=/etc/apt/sources.list.d/vktrain-bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  log "adding bookworm-backports ($bp)"
  mirror=$(debian_mirror)
  keyring=$(debian_keyring)
  cat >"$bp" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: $keyring
SRC
  rm -f "$apt_updated_marker.$$"
fi

# The host architecture's package only: with the aarch64 target set up, mesa-vulkan-drivers:arm64 is installed too.
mesa="mesa-vulkan-drivers:$(dpkg --print-architecture)"
mesa_version=$(dpkg-query -W -f='${Version}' "$mesa" 2>/dev/null || true)
if [ -z "$mesa_version" ] || dpkg --compare-versions "$mesa_version" lt 25; then
  log "installing mesa-vulkan-drivers from bookworm-backports (have: ${mesa_version:-none})"
  apt_install_backports "$mesa"
fi
log "host packages ready (mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' "$mesa"))"

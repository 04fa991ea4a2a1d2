#!/usr/bin/env bash
# Build dependencies newer than bookworm ships, into $VKTRAIN_CACHE/deps (idempotent, root not needed
# once setup-host.sh has run):
# - Vulkan headers, volk, VulkanMemoryAllocator and SPIRV-Headers from Debian trixie, downloaded with a
#   private apt configuration and unpacked (no trixie binary is installed on the host);
# - glslang 15 built from trixie's source package (cooperative matrix support).
# Prints the prefix to hand to CMake (CMAKE_PREFIX_PATH) on its last line.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

deps="$VKTRAIN_CACHE/deps"
prefix="$deps/prefix"
stamp="$deps/.complete-v1"
if [ -f "$stamp" ]; then
  printf '%s\n' "$prefix"
  exit 0
fi

mkdir -p "$deps/download" "$prefix"
private_apt "$deps/apt-trixie" "$(dpkg --print-architecture)" "deb deb-src" trixie
aptopt=("${PRIVATE_APT[@]}")

log "private apt update for trixie headers"
step "apt-get update of the private trixie configuration ($deps/apt-trixie)" \
  "check the network and that the Debian mirror of /etc/apt/sources.list.d serves trixie" apt-get "${aptopt[@]}" update

cd "$deps/download"
log "downloading trixie header packages"
step "downloading trixie's libvulkan-dev, libvulkan-volk-dev, libvulkan-memory-allocator-dev and spirv-headers" \
  "check the network; delete $deps and run again" \
  apt-get "${aptopt[@]}" download libvulkan-dev libvulkan-volk-dev libvulkan-memory-allocator-dev spirv-headers
for deb in ./*.deb; do dpkg-deb -x "$deb" "$prefix"; done

log "downloading glslang source"
step "downloading trixie's glslang source package" "check the network and that dpkg-dev is installed (setup-host.sh)" \
  apt-get "${aptopt[@]}" source --download-only glslang
orig=$(ls glslang_*.orig.tar.* | head -n1)
rm -rf "$deps/glslang-src" && mkdir -p "$deps/glslang-src"
tar -xf "$orig" -C "$deps/glslang-src" --strip-components=1

log "building glslang (about a minute)"
glslang_hint="check that build-essential, cmake and ninja-build are installed (setup-host.sh); delete $deps and run again"
step "configuring glslang" "$glslang_hint" cmake -S "$deps/glslang-src" -B "$deps/glslang-build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DENABLE_OPT=OFF -DGLSLANG_TESTS=OFF -DBUILD_SHARED_LIBS=OFF -DENABLE_GLSLANG_BINARIES=ON \
  -DCMAKE_INSTALL_PREFIX="$prefix/usr"
step "building glslang" "$glslang_hint" cmake --build "$deps/glslang-build" -j"$(nproc)"
step "installing glslang into $prefix" "$glslang_hint" cmake --install "$deps/glslang-build"
rm -rf "$deps/glslang-build" "$deps/glslang-src"

"$prefix/usr/bin/glslang" --version | head -n1 >&2
touch "$stamp"
printf '%s\n' "$prefix"

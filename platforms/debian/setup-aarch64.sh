#!/usr/bin/env bash
# The aarch64 (edge CPU) test target on a Debian bookworm x86-64 host (idempotent, root): the arm64
# architecture for multiarch packages, Debian's aarch64 cross compiler, qemu-user, and arm64 builds of
# the libraries vktrain links (zlib, GoogleTest) plus the Vulkan loader and Mesa lavapipe from
# bookworm-backports (the same version as the host's, as multiarch requires); and a trixie arm64 tree with
# Mesa 26.1 lavapipe (make-arm64-root.sh). Nothing arm64 runs without qemu; the host's own packages are
# unchanged.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  log "adding the arm64 architecture"
  dpkg --add-architecture arm64
  rm -f "$apt_updated_marker.$$"
fi
apt_install g++-aarch64-linux-gnu qemu-user-static libgtest-dev:arm64 zlib1g-dev:arm64 libvulkan1:arm64

# lavapipe for arm64 at the host's Mesa version (Multi-Arch: same requires one version for both). Both are installed
# in one command from bookworm-backports, so that if backports has moved on since the host's Mesa was installed apt
# takes the new version for both architectures instead of failing on a version gone from the archive. The backported
# Mesa needs libdrm2/libdrm-amdgpu1 >= 2.4.121, which only backports has: apt_install_backports takes exactly those
# from there too (a plain install answers "held broken packages"; -t bookworm-backports would also take libelf1).
host_mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers:$(dpkg --print-architecture) 2>/dev/null || true)
[ -n "$host_mesa" ] || die "mesa-vulkan-drivers is not installed on the host (run setup-host.sh first)"
arm_mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers:arm64 2>/dev/null || true)
if [ "$arm_mesa" != "$host_mesa" ]; then
  log "installing mesa-vulkan-drivers:arm64 from bookworm-backports (host: $host_mesa)"
  apt_install_backports "mesa-vulkan-drivers:$(dpkg --print-architecture)" mesa-vulkan-drivers:arm64
  host_mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers:$(dpkg --print-architecture))
fi
[ -f /usr/lib/aarch64-linux-gnu/libvulkan_lvp.so ] || die "arm64 lavapipe missing after install"
bash "$(dirname "${BASH_SOURCE[0]}")/make-arm64-root.sh" >/dev/null
log "aarch64 target ready (aarch64-linux-gnu-g++ $(aarch64-linux-gnu-g++ -dumpversion), qemu $(qemu-aarch64-static --version | head -n1 | awk '{print $3}'), arm64 lavapipe $host_mesa)"

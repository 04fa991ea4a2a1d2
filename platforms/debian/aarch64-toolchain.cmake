# Cross-compiling vktrain for aarch64 (the edge CPU) on a Debian x86-64 host with multiarch arm64
# libraries (platforms/debian/setup-aarch64.sh). The shader compiler stays a host program (pass
# -DVKTRAIN_GLSLANG=...); test programs run under qemu-user, which ctest and gtest discovery use through
# CMAKE_CROSSCOMPILING_EMULATOR.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
find_program(VKTRAIN_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(VKTRAIN_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${VKTRAIN_QEMU_AARCH64} -L /)
endif()
# Libraries and CMake packages of the target architecture only; headers (architecture-independent) and
# host programs from anywhere.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/cmake /lib/x86_64-linux-gnu)

#!/usr/bin/env bash
# Installs vktrain into a scratch prefix and builds examples/train_mlp (C++) and tests/install_c (C, through
# vktrain::vktrain_c) against it with find_package, as an application would, then runs them briefly: the libraries,
# their headers and the CMake package suffice (no shader files, no glslang at run time).
#   install_example.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work="$build/test-install"
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
find "$work/prefix" -name libvktrain.a | grep -q . || { echo "no libvktrain.a installed" >&2; exit 1; }
if find "$work/prefix" -name '*.spv' -o -name '*.comp' | grep -q .; then echo "shader files were installed" >&2; exit 1; fi
cmake -S "$src/examples/train_mlp" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log"
cmake --build "$work/build" >"$work/build.log"
cd "$work"
out=$("$work/build/train_mlp" 5000 1)
echo "$out"
echo "$out" | grep -Eq '^epoch 1: test accuracy 0\.[6-9]' || { echo "the example did not train to >= 0.6" >&2; exit 1; }
test -s "$work/train_mlp.safetensors"

# The opt-in interop header compiles from the installed package (its Vulkan headers found by the package).
cmake -S "$src/tests/install_interop" -B "$work/interop" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  >"$work/interop-configure.log"
cmake --build "$work/interop" >"$work/interop-build.log"
"$work/interop/interop_app"

# A C program (not C++) against the installed package's vktrain::vktrain_c (libvktrain_c.so and <vktrain/vktrain.h>).
find "$work/prefix" -name 'libvktrain_c.so*' | grep -q . || { echo "no libvktrain_c.so installed" >&2; exit 1; }
cmake -S "$src/tests/install_c" -B "$work/c" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" \
  >"$work/c-configure.log"
cmake --build "$work/c" >"$work/c-build.log" || { cat "$work/c-build.log" >&2; exit 1; }
"$work/c/c_app"

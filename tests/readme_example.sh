#!/usr/bin/env bash
# The README's library example is a complete program, and this keeps it one: extracts the first ```cpp block after
# the README's "<!-- readme-example" marker, builds it exactly as written against the installed package
# (find_package(vktrain), tests/readme_example/CMakeLists.txt), runs it, and checks that it trained (one epoch of
# Fashion-MNIST: test accuracy >= 0.75) and saved its weights.
#   readme_example.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work="$build/test-readme-example"
rm -rf "$work" && mkdir -p "$work"

python3 - "$src/README.md" "$work/main.cpp" <<'EOF'
import sys
readme, out = sys.argv[1], sys.argv[2]
lines = open(readme, encoding="utf-8").read().split("\n")
markers = [i for i, line in enumerate(lines) if line.startswith("<!-- readme-example")]
if len(markers) != 1:
    sys.exit("README.md must have exactly one '<!-- readme-example' marker line, found %d" % len(markers))
start = next((i for i in range(markers[0] + 1, len(lines)) if lines[i] == "```cpp"), None)
if start is None:
    sys.exit("README.md has no ```cpp block after the readme-example marker")
end = next((i for i in range(start + 1, len(lines)) if lines[i] == "```"), None)
if end is None:
    sys.exit("README.md: the readme-example block is not closed")
code = lines[start + 1:end]
if "int main(" not in "\n".join(code):
    sys.exit("README.md: the readme-example block has no main(): it must be a complete program")
open(out, "w", encoding="utf-8").write("\n".join(code) + "\n")
print("extracted README.md lines %d-%d" % (start + 2, end))
EOF

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
cmake -S "$src/tests/readme_example" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DREADME_EXAMPLE_SOURCE="$work/main.cpp" >"$work/configure.log"
if ! cmake --build "$work/build" >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  echo "the README's library example does not compile as written" >&2
  exit 1
fi
cd "$work"
out=$(timeout 300 "$work/build/readme_example")
echo "$out"
echo "$out" | grep -Eq '^last loss [0-9.]+, test accuracy 0\.(7[5-9]|[89][0-9])' ||
  { echo "the README's library example did not print a test accuracy >= 0.75" >&2; exit 1; }
test -s "$work/weights.safetensors" || { echo "the README's library example wrote no weights.safetensors" >&2; exit 1; }

#!/usr/bin/env bash
# Applies the checked-in .clang-format to every C++ source (the `format` test checks the same files).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
git ls-files -co --exclude-standard -- '*.hpp' '*.cpp' | grep -v '^src/third_party/' | xargs clang-format -i --style=file

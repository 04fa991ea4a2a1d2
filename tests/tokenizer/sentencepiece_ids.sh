#!/usr/bin/env bash
# SentencePiece ids against python3-sentencepiece (sentencepiece_ids.py), with Debian's /usr/bin/python3: a missing
# python3-sentencepiece is a failure, not a skip (platforms/debian/setup-test-tools.sh installs it).
#   sentencepiece_ids.sh VKTRAIN_BINARY BUILD_DIR SOURCE_DIR
set -euo pipefail
bin=$1 build=$2 src=$3
py=/usr/bin/python3
"$py" -c 'import sentencepiece' 2>/dev/null || { echo "FAIL: python3-sentencepiece is not installed (platforms/debian/setup-test-tools.sh)"; exit 1; }
[ -d /usr/share/games/fortunes ] || { echo "FAIL: no fortunes corpus (platforms/debian/setup-host.sh)"; exit 1; }
exec "$py" "$src/tests/tokenizer/sentencepiece_ids.py" "$bin" "$build/test-sentencepiece" "$src"

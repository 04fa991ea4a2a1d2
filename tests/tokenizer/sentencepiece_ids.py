"""SentencePiece through vktrain (libsentencepiece) against python3-sentencepiece: trains two small models on part of
the fortunes corpus (a Llama-style BPE with byte fallback and no normalisation, and SentencePiece's default unigram
with NFKC normalisation), then `vktrain tokenize` must give python3-sentencepiece's ids on varied text and on a slice
of the corpus, `tokenize --decode` its decoded text (for the Llama-style model, the text itself), and a GPT-2 folder
that also holds tokenizer.model is read as SentencePiece. A missing python3-sentencepiece is a failure.

    sentencepiece_ids.py VKTRAIN_BINARY WORK_DIR SOURCE_DIR
"""
import os
import shutil
import subprocess
import sys

import sentencepiece as spm

binary, work, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

fortunes = "/usr/share/games/fortunes"
corpus = b""
for name in ["fortunes", "literature", "science", "wisdom", "computers", "people"]:
    with open(os.path.join(fortunes, name), "rb") as f:
        corpus += f.read()
corpus = corpus.decode("utf-8")
train_text = corpus[: len(corpus) // 2]
held_out = corpus[len(corpus) // 2:][:300000]
with open(os.path.join(work, "train.txt"), "w", encoding="utf-8") as f:
    f.write(train_text)
texts = {"held_out": held_out}
with open(os.path.join(src, "tests/tokenizer/varied.txt"), encoding="utf-8", newline="") as f:
    texts["varied"] = f.read()
texts["leading_space"] = "  two leading spaces, trailing  "
texts["empty"] = ""

models = {
    "llama": dict(model_type="bpe", vocab_size=800, byte_fallback=True, normalization_rule_name="identity",
                  remove_extra_whitespaces=False, split_digits=True, character_coverage=0.9995),
    "unigram": dict(model_type="unigram", vocab_size=600),
}
failed = False
for kind, options in models.items():
    folder = os.path.join(work, kind)
    os.makedirs(folder)
    spm.SentencePieceTrainer.train(input=os.path.join(work, "train.txt"), model_prefix=os.path.join(folder, "m"),
                                   max_sentence_length=100000, minloglevel=2, **options)
    os.rename(os.path.join(folder, "m.model"), os.path.join(folder, "tokenizer.model"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
    for name, text in texts.items():
        path = os.path.join(work, "%s.%s.txt" % (kind, name))
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        p = subprocess.run([binary, "tokenize", "--tokenizer", folder, path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if p.returncode != 0:
            print("FAIL %s %s: %s" % (kind, name, p.stderr.decode()))
            failed = True
            continue
        got = [int(x) for x in p.stdout.split()]
        want = sp.encode(text)
        if got != want:
            k = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
            print("FAIL %s %s: ids differ at %d of %d: vktrain %r, python3-sentencepiece %r" %
                  (kind, name, k, len(want), got[k:k + 5], want[k:k + 5]))
            failed = True
            continue
        ids = path + ".ids"
        with open(ids, "w") as f:
            f.write(p.stdout.decode())
        d = subprocess.run([binary, "tokenize", "--tokenizer", folder, "--decode", ids], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        back = d.stdout.decode("utf-8")
        if d.returncode != 0 or back != sp.decode(want):
            print("FAIL %s %s: --decode differs from python3-sentencepiece's decode" % (kind, name))
            failed = True
            continue
        if kind == "llama" and back != text:
            print("FAIL %s %s: --decode does not give the text back" % (kind, name))
            failed = True
            continue
        print("ok %s %s: %d ids identical" % (kind, name, len(want)))
# tokenizer.model is read before tokenizer.json / vocab.json (a Llama folder holds both forms).
both = os.path.join(work, "both")
shutil.copytree(os.path.join(work, "llama"), both)
with open(os.path.join(both, "vocab.json"), "w") as f:
    f.write("{}")
with open(os.path.join(both, "merges.txt"), "w") as f:
    f.write("")
p = subprocess.run([binary, "tokenize", "--tokenizer", both, os.path.join(work, "llama.varied.txt")],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
sp = spm.SentencePieceProcessor(model_file=os.path.join(both, "tokenizer.model"))
if p.returncode != 0 or [int(x) for x in p.stdout.split()] != sp.encode(texts["varied"]):
    print("FAIL: a folder with tokenizer.model and vocab.json is not read as SentencePiece")
    failed = True
with open(os.path.join(both, "tokenizer.model"), "wb") as f:
    f.write(b"not a model")
p = subprocess.run([binary, "tokenize", "--tokenizer", both, os.path.join(work, "llama.varied.txt")],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
err = p.stderr.decode()
if p.returncode != 1 or "tokenizer.model: not a SentencePiece model" not in err or len(err.splitlines()) != 1:
    print("FAIL: a corrupt tokenizer.model: %r" % err)
    failed = True
# A GPT trained on SentencePiece tokens carries the model in its file: eval and generate use it.
run = lambda *a: subprocess.run([binary] + [str(x) for x in a], cwd=work, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
p = run("train", "--model", "gpt:layers=1,heads=2,width=16,context=16", "--text", "llama.held_out.txt",
        "--tokenizer", "llama", "--steps", 2, "--warmup", 1, "--batch-size", 4, "--eval-at", 0, "--val-limit", 4,
        "--quiet", "--output", "w.safetensors")
e = run("eval", "--weights", "w.safetensors", "--text", "llama.varied.txt", "--val-limit", 2)
g = run("generate", "--weights", "w.safetensors", "--prompt", "The ", "--tokens", 5, "--quiet")
if p.returncode != 0 or e.returncode != 0 or b"vocabulary 800" not in e.stdout or g.returncode != 0 or \
        not g.stdout.startswith(b"The "):
    print("FAIL: train --tokenizer with SentencePiece, eval, generate: %r %r %r" % (p.stderr, e.stderr, g.stderr))
    failed = True
else:
    print("ok train --tokenizer (SentencePiece), eval and generate with the file's tokenizer")
print("FAIL" if failed else "PASS")
sys.exit(1 if failed else 0)

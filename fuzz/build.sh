#!/usr/bin/env bash
# OSS-Fuzz build script (https://google.github.io/oss-fuzz/getting-started/new-project-guide/):
# builds every fuzz/fuzz_<x>.cpp and fuzz/openssl/fuzz_<x>.cpp (linked with
# OpenSSL) into $OUT/fuzz_<x> with $CXX $CXXFLAGS and
# $LIB_FUZZING_ENGINE, copies fuzz/smtp.dict as $OUT/fuzz_<x>.dict (picked up
# by ClusterFuzz by name) and zips fuzz/corpus/<x>/ as
# $OUT/fuzz_<x>_seed_corpus.zip. The core is header-only: no library to build.
# Local check:
#   CXX=clang++ CXXFLAGS="-fsanitize=fuzzer-no-link,address" \
#   LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=/tmp/out fuzz/build.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${CXX:?set CXX}" "${OUT:?set OUT}" "${LIB_FUZZING_ENGINE:?set LIB_FUZZING_ENGINE}"
CXXFLAGS="${CXXFLAGS:-}"
mkdir -p "$OUT"

zip_dir() {  # ZIP DIR: the files of DIR, flat
  rm -f "$1"
  if command -v zip >/dev/null 2>&1; then
    zip -q -j "$1" "$2"/*
  else
    python3 -m zipfile -c "$1" "$2"/*
  fi
}

shopt -s nullglob
built=0
for src in fuzz/fuzz_*.cpp fuzz/openssl/fuzz_*.cpp; do
  name="$(basename "$src" .cpp)"
  corpus="fuzz/corpus/${name#fuzz_}"
  echo "fuzz/build.sh: $name"
  extra=()
  if [[ "$src" == fuzz/openssl/* ]]; then
    # The OpenSSL adapter's targets (an OSS-Fuzz Dockerfile must install libssl-dev).
    extra=(-Iadapters/openssl/include -lssl -lcrypto)
  fi
  # shellcheck disable=SC2086  # CXXFLAGS and LIB_FUZZING_ENGINE are word lists
  $CXX $CXXFLAGS -std=c++17 -Iinclude "$src" -o "$OUT/$name" $LIB_FUZZING_ENGINE "${extra[@]}"
  if [[ -f fuzz/smtp.dict ]]; then
    cp fuzz/smtp.dict "$OUT/$name.dict"
  fi
  if [[ -d "$corpus" ]] && [[ -n "$(ls -A "$corpus")" ]]; then
    zip_dir "$OUT/${name}_seed_corpus.zip" "$corpus"
  fi
  built=$((built + 1))
done
if ((built == 0)); then
  echo "fuzz/build.sh: no fuzz/fuzz_*.cpp" >&2
  exit 1
fi
echo "fuzz/build.sh: $built targets in $OUT"

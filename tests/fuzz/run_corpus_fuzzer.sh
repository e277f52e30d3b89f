#!/usr/bin/env bash
# Builds one libFuzzer target (clang, libFuzzer + ASan + UBSan) and runs it
# for FUZZ_SECONDS (default 20) over its committed seed corpus
# tests/fuzz/corpus/NAME/ (plus what earlier runs found, kept in BUILD_DIR).
#
#   tests/fuzz/run_corpus_fuzzer.sh NAME [BUILD_DIR]   (default: build-fuzz-NAME)
#
# NAME is one of:
#   http_request   HTTP/1.1 request framing as the server parses it   (server/)
#   tokenizer      encode/decode round trips; the default model's vocabulary
#                  when RESTKV_MODEL is set, small synthetic ones always
#   stop_matcher   incremental stop-string matching against a naive search
#   chat_template  chat templates over random conversations
#   jinja          the Jinja interpreter over random template sources
#
# Exit status: 0 when the run finds nothing (or clang++ / libFuzzer is
# missing: then it prints "skipped: ..."), non-zero when the build fails or
# the fuzzer finds a crash; the crashing input is left as BUILD_DIR/crash-*,
# to be replayed with: BUILD_DIR/NAME_fuzzer BUILD_DIR/crash-<sha1>.
set -euo pipefail

name="${1:?usage: run_corpus_fuzzer.sh NAME [BUILD_DIR]}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(mkdir -p "${2:-build-fuzz-$name}" && cd "${2:-build-fuzz-$name}" && pwd)"
# shellcheck source=tests/fuzz/fuzz_common.sh
source "$root/tests/fuzz/fuzz_common.sh"
fuzz_probe_clang

# Each target compiles only the sources it needs. Abseil is Debian's, built
# by g++ against libstdc++; clang links it fine (as the other fuzzers do).
utf8="engine/tokenizer/utf8.cc"
gguf="common/check.cc kernels/ggml_type.cc kernels/cpu/dequantize.cc engine/gguf/gguf_value.cc
      engine/gguf/gguf_reader.cc engine/gguf/gguf_file.cc"
pkgs="absl_strings absl_str_format"
case "$name" in
  http_request)
    srcs="server/http_request_fuzzer.cc"; max_len=4096 ;;
  tokenizer)
    srcs="engine/tokenizer/tokenizer_fuzzer.cc engine/tokenizer/tokenizer.cc
          engine/tokenizer/bpe_tokenizer.cc engine/tokenizer/spm_tokenizer.cc
          engine/tokenizer/pretokenizer.cc engine/tokenizer/tokenizer_gguf.cc
          engine/tokenizer/incremental_detokenizer.cc $utf8 $gguf"
    pkgs="$pkgs absl_status absl_statusor absl_flat_hash_map absl_flat_hash_set icu-uc icu-i18n"
    max_len=1024 ;;
  stop_matcher)
    srcs="engine/sampling/stop_matcher_fuzzer.cc engine/sampling/stop_matcher.cc $utf8"
    max_len=1024 ;;
  chat_template)
    srcs="engine/tokenizer/chat_template_fuzzer.cc engine/tokenizer/chat_template.cc $utf8"
    pkgs="$pkgs absl_status absl_statusor"
    max_len=2048 ;;
  jinja)
    srcs="engine/jinja/template_fuzzer.cc $(cd "$root" && ls engine/jinja/*.cc | grep -v _test | grep -v _fuzzer | tr '\n' ' ')"
    pkgs="$pkgs absl_status absl_statusor absl_time"
    max_len=2048 ;;
  *)
    echo "unknown fuzz target '$name'" >&2
    exit 2 ;;
esac

binary="$build/${name}_fuzzer"
sanitizers="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
paths=()
for s in $srcs; do paths+=("$root/$s"); done
# shellcheck disable=SC2046,SC2086
"$cxx" -std=c++20 -g -O1 -march=native -fno-omit-frame-pointer $sanitizers \
  -Wall -Wextra -Wno-unused-parameter -I"$root" $(pkg-config --cflags $pkgs) \
  "${paths[@]}" $(pkg-config --libs $pkgs) -o "$binary"

# fuzz_run reads $build/seeds and $build/corpus (what the fuzzer discovers,
# kept between runs); the seeds are the committed corpus.
rm -rf "$build/seeds" "$build"/crash-* "$build"/leak-* "$build"/timeout-* "$build"/oom-*
mkdir -p "$build/corpus"
cp -r "$root/tests/fuzz/corpus/$name" "$build/seeds"
dict="$root/tests/fuzz/$name.dict"
[[ -f "$dict" ]] || dict=""
fuzz_run "$name" "$binary" "$max_len" "$dict"

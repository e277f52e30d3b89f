#!/usr/bin/env bash
# Builds the GGUF parser fuzzer (clang, libFuzzer + ASan + UBSan) and runs it
# for FUZZ_SECONDS (default 20) over a seed corpus of GgufWriter-made files.
#
#   tests/fuzz/run_gguf_fuzzer.sh [BUILD_DIR]     (default: build-fuzz)
#
# Exit status: 0 when the run finds nothing (or clang++ / libFuzzer is
# missing: then it prints "skipped: ..."), non-zero when the build fails or
# the fuzzer finds a crash; the crashing input is left as BUILD_DIR/crash-*,
# to be replayed with: BUILD_DIR/gguf_file_fuzzer BUILD_DIR/crash-<sha1>.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(mkdir -p "${1:-build-fuzz}" && cd "${1:-build-fuzz}" && pwd)"
# shellcheck source=tests/fuzz/fuzz_common.sh
source "$root/tests/fuzz/fuzz_common.sh"
fuzz_probe_clang

generator=()
if command -v ninja > /dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S "$root/tests/fuzz" -B "$build" "${generator[@]}" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$build/configure.log" \
  || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "${FUZZ_JOBS:-2}"

# Seeds: GgufWriter-made files, plus the gguf-py-written test fixture.
seeds="$build/seeds"
corpus="$build/corpus"  # what the fuzzer discovers; kept between runs
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus"
"$build/gguf_seed_gen" "$seeds"
if [[ -f "$root/engine/gguf/testdata/gguf_py_small.gguf" ]]; then
  cp "$root/engine/gguf/testdata/gguf_py_small.gguf" "$seeds/"
fi

fuzz_run "GgufFile::FromBuffer" "$build/gguf_file_fuzzer" 8192 "$root/tests/fuzz/gguf.dict"

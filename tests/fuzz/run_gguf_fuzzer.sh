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
seconds="${FUZZ_SECONDS:-20}"
cxx="${FUZZ_CXX:-clang++}"

if ! command -v "$cxx" > /dev/null 2>&1; then
  echo "skipped: clang not found ($cxx)"
  exit 0
fi
# clang without the libFuzzer runtime (e.g. no libclang-rt package) cannot
# build the target at all; that is a missing tool, not a failure.
probe="$build/probe"
mkdir -p "$probe"
printf 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }\n' > "$probe/p.cc"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" > "$probe/log" 2>&1; then
  echo "skipped: $cxx cannot link -fsanitize=fuzzer,address,undefined (see $probe/log)"
  exit 0
fi

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
if [[ -f "$root/engine/testdata/gguf_py_small.gguf" ]]; then
  cp "$root/engine/testdata/gguf_py_small.gguf" "$seeds/"
fi

echo "fuzzing GgufFile::FromBuffer for ${seconds}s ($(ls "$seeds" | wc -l) seeds)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
"$build/gguf_file_fuzzer" "$corpus" "$seeds" \
  -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -dict="$root/tests/fuzz/gguf.dict" -artifact_prefix="$build/" -print_final_stats=1 \
  > "$build/fuzz.log" 2>&1 || status=$?
tail -n 25 "$build/fuzz.log"
if [[ $status -ne 0 ]]; then
  echo "FAILED: gguf_file_fuzzer exited with status $status; crashing input: $(ls "$build"/crash-* "$build"/leak-* "$build"/timeout-* "$build"/oom-* 2>/dev/null | tr '\n' ' ')"
  exit 1
fi
echo "ok: no crashes in ${seconds}s"

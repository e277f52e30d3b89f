# Shared by the run_*_fuzzer.sh scripts (sourced, not run). Expects $build.
#
# fuzz_probe_clang: sets $cxx (FUZZ_CXX, default clang++) and exits 0 with
#   "skipped: ..." when it cannot link a libFuzzer+ASan+UBSan target — a
#   missing tool, not a failure.
# fuzz_run NAME BINARY MAX_LEN DICT: runs BINARY over $build/corpus and
#   $build/seeds for FUZZ_SECONDS (default 20), with the libFuzzer dictionary
#   DICT unless it is ""; exits 1 naming the crashing input when it finds one.

fuzz_probe_clang() {
  cxx="${FUZZ_CXX:-clang++}"
  if ! command -v "$cxx" > /dev/null 2>&1; then
    echo "skipped: clang not found ($cxx)"
    exit 0
  fi
  local probe="$build/probe"
  mkdir -p "$probe"
  printf 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }\n' > "$probe/p.cc"
  if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" > "$probe/log" 2>&1; then
    echo "skipped: $cxx cannot link -fsanitize=fuzzer,address,undefined (see $probe/log)"
    exit 0
  fi
}

fuzz_run() {
  local name="$1" binary="$2" max_len="$3" dict="$4"
  local seconds="${FUZZ_SECONDS:-20}"
  local dict_arg=()
  [[ -n "$dict" ]] && dict_arg=(-dict="$dict")
  echo "fuzzing $name for ${seconds}s ($(ls "$build/seeds" | wc -l) seeds)"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  local status=0
  "$binary" "$build/corpus" "$build/seeds" \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    "${dict_arg[@]}" -artifact_prefix="$build/" -print_final_stats=1 \
    > "$build/fuzz.log" 2>&1 || status=$?
  tail -n 25 "$build/fuzz.log"
  if [[ $status -ne 0 ]]; then
    echo "FAILED: $(basename "$binary") exited with status $status; crashing input: $(ls "$build"/crash-* "$build"/leak-* "$build"/timeout-* "$build"/oom-* 2>/dev/null | tr '\n' ' ')"
    exit 1
  fi
  echo "ok: no crashes in ${seconds}s"
}

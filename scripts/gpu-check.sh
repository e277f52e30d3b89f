#!/usr/bin/env bash
# The one-shot GPU check, run on the GPU machine from the gpu-pack/ folder
# that scripts/gpu-pack builds (this file is gpu-pack/check.sh there).
# Needs only that folder, the NVIDIA driver and the CUDA 13 runtime/cuBLAS.
# Every step has its own timeout; the caps add up to 8 minutes (480 s). Writes
# 8 files to $OUT (default ./out):
#   facts.txt              nvidia-smi, the pack, and each step's exit status
#   kernel_tests.txt       every CUDA op against the CPU backend (gtest), the
#                          eviction kernels' kept sets against the CPU's (8k/32k),
#                          then compute-sanitizer memcheck, racecheck, synccheck
#   decode_attention.json  decode attention GB/s, 4k/32k/128k x batch 1/32 (CUDA events)
#   prefill_attention.json prefill attention per layer, 8k/32k/128k
#   model.json             random-weights Llama-3-8B shape, few layers: prefill tok/s per policy
#   concurrency.json       requests decoding together at 128k (random K/V pages,
#                          pool sized for 32 layers), full vs restkv@2048
#   parity.json            CPU vs CUDA, smollm2-135m shape: greedy tokens, kept sets
#   log.txt                the benchmarks' stderr
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
cd "$here"
start=$(date +%s)
facts="$out/facts.txt"
log="$out/log.txt"
: >"$facts"
: >"$log"
export LD_LIBRARY_PATH="$here/lib:${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64:/usr/local/cuda/lib"
export PATH="$PATH:/usr/local/cuda/bin"

# step NAME CAP_SECONDS CMD...: runs CMD under `timeout`, records its status.
step() {
  local name=$1 cap=$2
  shift 2
  local t0=$(date +%s)
  timeout --kill-after=5 "$cap" "$@"
  local rc=$?
  echo "step $name: exit $rc in $(( $(date +%s) - t0 )) s (cap $cap s)" >>"$facts"
  return 0
}

{
  echo "== restkv GPU check, $(date -u)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit,pcie.link.gen.max --format=csv 2>&1
  nvidia-smi 2>&1 | head -20
  echo "nvcc/runtime: $(ls /usr/local/cuda/lib64/libcudart.so.* 2>/dev/null | head -1)"
  echo "glibc: $(ldd --version 2>&1 | head -1)"
} >>"$facts"

[ -d lib ] || step unpack 20 tar -xJf lib.tar.xz || true
if [ ! -d lib ]; then  # no xz(1): Python's tarfile reads it too
  step unpack_python 20 python3 -c 'import tarfile; tarfile.open("lib.tar.xz").extractall(".")'
fi

# Binaries need the glibc they were built against (lib/glibc/VERSION) or newer;
# on an older one they run through the packed loader and libc.
run=()
built=$(cat lib/glibc/VERSION 2>/dev/null || echo 0)
have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$built" "$have" | sort -V | head -1)" != "$built" ]; then
  run=("$here/lib/glibc/ld-linux-x86-64.so.2" --library-path "$here/lib/glibc:$LD_LIBRARY_PATH")
  echo "glibc $have < $built: binaries run through the packed loader" >>"$facts"
fi

step kernel_tests 50 "${run[@]}" bin/restkv_kernels_cuda_tests --gtest_color=no >"$out/kernel_tests.txt" 2>&1

# Eviction on the device against the CPU reference: kept-set parity (mean
# Jaccard >= 0.999) on the test shapes (part of kernel_tests) and at the
# Llama-3-8B shape at 8k / 32k tokens, with the device ms of one evicting
# layer ("cuda eviction ..." lines), appended to kernel_tests.txt.
step eviction_parity 40 "${run[@]}" bin/restkv_kernels_cuda_tests --gtest_color=no \
  --gtest_also_run_disabled_tests --gtest_filter='CudaEvictionTest.DISABLED_*' >>"$out/kernel_tests.txt" 2>&1

# Small cases only: the sanitizers slow kernels by 10-100x.
small='CudaBackendTest.RmsNorm*:CudaBackendTest.Copies*:CudaEvictionTest.SmallLayerEveryPolicy:Shapes/CudaAttentionTest.MatchesCpu/H4kv4d64b16*:Shapes/CudaAttentionTest.MatchesCpu/H8kv2d128b16*'
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck synccheck; do
  echo "== compute-sanitizer $tool" >>"$out/kernel_tests.txt"
  cap=40
  [ "$tool" = memcheck ] && cap=35
  [ "$tool" = synccheck ] && cap=25
  step "sanitizer_$tool" "$cap" "$sanitizer" --tool "$tool" --error-exitcode 3 \
    "${run[@]}" bin/restkv_kernels_cuda_tests --gtest_color=no --gtest_filter="$small" >>"$out/kernel_tests.txt" 2>&1
done

bench() {
  local name=$1 cap=$2
  shift 2
  echo "== $name" >>"$log"
  step "bench_$name" "$cap" "${run[@]}" bin/bench_cuda --sections "$name" --cache-dir "${TMPDIR:-/tmp}" "$@" \
    >"$out/$name.json" 2>>"$log"
}
bench decode_attention 60 --contexts 4096 32768 131072 --batches 1 32 --iters 20
bench prefill_attention 50 --prefill-tokens 8192 32768 131072
bench model 60 --layers 4 --prefill-tokens 8192 32768 --policies full restkv snapkv --decode-tokens 8
# Concurrency at 128k: the pool is sized for the 32-layer model (its weights
# scaled from the 4 loaded layers') and each request's pages are filled with
# random K/V instead of prefilled, so the requests that fit and their decode
# step are measured at 128k in seconds (full vs restkv@2048).
bench concurrency 60 --layers 4 --concurrency-depth 32 --concurrency-tokens 131072 \
  --policies full restkv --kv-budget 2048 --max-requests 1024 --concurrency-steps 4
# CPU against CUDA on the smollm2-135m shape with random weights: greedy
# tokens (teacher-forced agreement, logit error) and kept sets.
bench parity 40

echo "total: $(( $(date +%s) - start )) s" >>"$facts"
cat "$facts"

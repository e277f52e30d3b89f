#!/usr/bin/env bash
# Builds the OpenAI request-parsing fuzzer (clang, libFuzzer + ASan + UBSan)
# and runs it for FUZZ_SECONDS (default 20) over a seed corpus of request
# bodies written below.
#
#   tests/fuzz/run_openai_fuzzer.sh [BUILD_DIR]     (default: build-fuzz-openai)
#
# Exit status: 0 when the run finds nothing (or clang++ / libFuzzer is
# missing: then it prints "skipped: ..."), non-zero when the build fails or
# the fuzzer finds a crash; the crashing input is left as BUILD_DIR/crash-*,
# to be replayed with: BUILD_DIR/openai_protocol_fuzzer BUILD_DIR/crash-<sha1>.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(mkdir -p "${1:-build-fuzz-openai}" && cd "${1:-build-fuzz-openai}" && pwd)"
# shellcheck source=tests/fuzz/fuzz_common.sh
source "$root/tests/fuzz/fuzz_common.sh"
fuzz_probe_clang

# The parser needs only a few sources plus Abseil (Debian's, built by g++,
# links fine with clang and libstdc++) and header-only nlohmann::json.
absl="absl_status absl_statusor absl_strings absl_str_format absl_cord"
sanitizers="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
# shellcheck disable=SC2046,SC2086
"$cxx" -std=c++20 -g -O1 -march=native -fno-omit-frame-pointer $sanitizers \
  -Wall -Wextra -Wno-unused-parameter -I"$root" $(pkg-config --cflags $absl) \
  "$root/server/openai_protocol_fuzzer.cc" "$root/server/openai_protocol.cc" "$root/server/json_fields.cc" \
  "$root/server/api_error.cc" "$root/server/sse_stream.cc" "$root/server/structured_fields.cc" \
  "$root/server/chat_tools.cc" "$root/engine/jinja/value.cc" \
  "$root/common/check.cc" \
  $(pkg-config --libs $absl) -o "$build/openai_protocol_fuzzer"

seeds="$build/seeds"
corpus="$build/corpus"  # what the fuzzer discovers; kept between runs
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus"
i=0
seed() { i=$((i + 1)); printf '%s' "$1" > "$seeds/seed$i.json"; }
seed '{"model": "m", "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}'
seed '{"prompt": ["a", "b"], "n": 2, "echo": true, "logprobs": 2, "stop": ["\n", "."], "seed": 7}'
seed '{"prompt": [1, 2, 3], "stream": true, "stream_options": {"include_usage": true}}'
seed '{"prompt": [[1, 2], [3]], "top_p": 0.9, "top_k": 40, "min_p": 0.05, "ignore_eos": true}'
seed '{"prompt": "x", "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1, "user": "u", "priority": 3, "kv_policy": "full", "kv_budget": 128, "stop_token_ids": [2]}'
seed '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], "max_completion_tokens": 5, "logprobs": true, "top_logprobs": 2}'
seed '{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, {"role": "assistant", "content": null}], "stream": true}'
seed '{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}, "logit_bias": {}, "tools": []}'
seed '{"prompt": "x", "min_tokens": 2, "include_stop_str_in_output": true, "skip_special_tokens": false, "spaces_between_special_tokens": false, "truncate_prompt_tokens": -1, "logit_bias": {"5": 1e9, "7": -3.5}, "stream": true, "stream_options": {"include_usage": true, "continuous_usage_stats": true}}'
seed '{"prompt": "x", "messages": [], "add_special_tokens": false, "return_token_strs": true}'
seed '{"tokens": [1, 2, 3], "model": null}'

dict="$build/openai.dict"
cat > "$dict" <<'DICT'
"\"prompt\""
"\"messages\""
"\"role\""
"\"content\""
"\"system\""
"\"user\""
"\"assistant\""
"\"type\""
"\"text\""
"\"model\""
"\"max_tokens\""
"\"max_completion_tokens\""
"\"temperature\""
"\"top_p\""
"\"top_k\""
"\"min_p\""
"\"seed\""
"\"stop\""
"\"stop_token_ids\""
"\"n\""
"\"stream\""
"\"stream_options\""
"\"include_usage\""
"\"logprobs\""
"\"top_logprobs\""
"\"echo\""
"\"kv_policy\""
"\"kv_budget\""
"\"priority\""
"\"tokens\""
"\"min_tokens\""
"\"include_stop_str_in_output\""
"\"skip_special_tokens\""
"\"spaces_between_special_tokens\""
"\"truncate_prompt_tokens\""
"\"logit_bias\""
"\"continuous_usage_stats\""
"null"
"true"
"false"
"1e999"
"-0.0"
"18446744073709551615"
"\"\\u0000\""
"\"\\ud800\""
DICT

fuzz_run "the OpenAI request parsers" "$build/openai_protocol_fuzzer" 4096 "$dict"

#!/usr/bin/env python3
"""llama.cpp's side of the CPU benchmark (tools/bench-cpu), via llama-cpp-python.

Measures, on a GGUF file and a thread count:
  pp: prompt processing, one llama_decode of --prompt-tokens tokens
      (n_batch = n_ubatch = 512, so 512 tokens are one batch); best of 3
      after one warm-up, KV cache cleared before every run.
  tg: single-stream decode, --gen-tokens tokens fed one at a time after a
      16-token prompt; best of 3 after one warm-up.

Settings match how restkv is compared (and scripts/gen-golden): f32 KV cache
(type_k = type_v = GGML type 0), flash attention off, only the last
position's logits computed, n_threads = n_threads_batch = --threads, weights
read into memory (use_mmap=False, no mlock). The prompt is real text,
tokenised once and repeated until it is long enough, so the run is
deterministic. Decode feeds the next tokens of that same text instead of
sampling (as llama-bench does); the argmax over 49k logits would add the same
small cost to both engines.

Needs llama-cpp-python (pip install llama-cpp-python numpy).

Usage: tools/bench_llamacpp.py --model PATH [--threads 2] [--prompt-tokens 512]
                               [--gen-tokens 128] [--json]
"""

import argparse
import json
import os
import sys
import time

GGML_TYPE_F32 = 0
SHORT_PROMPT = 16
RUNS = 3

TEXT = (
    "The history of computing is a story of steadily shrinking machines and steadily "
    "growing ambitions. In the 1940s, computers such as ENIAC filled entire rooms, "
    "consumed enormous amounts of electricity, and were programmed by rewiring panels "
    "of cables. The invention of the transistor in 1947 and the integrated circuit a "
    "decade later allowed engineers to pack more and more logic into smaller spaces. "
    "By the 1970s, microprocessors had made it possible to build computers that fit on "
    "a desk, and hobbyists began assembling their own machines from kits. The personal "
    "computer revolution of the 1980s brought word processors, spreadsheets, and games "
    "into millions of homes. In the 1990s, the World Wide Web connected those machines "
    "to one another, turning the computer from a calculating tool into a medium for "
    "communication, commerce, and entertainment. "
)


def text_tokens(llm, n):
    """The first n tokens of TEXT repeated: a fixed sequence of real text tokens."""
    base = llm.tokenize(TEXT.encode("utf-8"), add_bos=False, special=False)
    return (base * (n // len(base) + 1))[:n]


def best_rate(run, n_tokens):
    """Tokens/s of the fastest of RUNS timed calls of run(), after one warm-up."""
    run()
    best = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n_tokens / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not os.path.exists(args.model):
        sys.exit("bench_llamacpp: no model at " + args.model)
    import llama_cpp

    n_batch = max(512, args.prompt_tokens)
    n_ctx = max(2048, args.prompt_tokens, SHORT_PROMPT + args.gen_tokens)
    llm = llama_cpp.Llama(
        model_path=args.model, n_threads=args.threads, n_threads_batch=args.threads,
        n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, type_k=GGML_TYPE_F32,
        type_v=GGML_TYPE_F32, flash_attn=False, logits_all=False, use_mmap=False,
        use_mlock=False, seed=1234, verbose=False)
    tokens = text_tokens(llm, max(args.prompt_tokens, SHORT_PROMPT + args.gen_tokens))

    def prefill():
        llm.reset()  # n_tokens = 0: eval drops every cached position first
        llm.eval(tokens[:args.prompt_tokens])

    def decode():
        """Seconds to decode gen_tokens one at a time after a fresh short prompt."""
        llm.reset()
        llm.eval(tokens[:SHORT_PROMPT])
        start = time.perf_counter()
        for t in tokens[SHORT_PROMPT:SHORT_PROMPT + args.gen_tokens]:
            llm.eval([t])  # one llama_decode per token, KV cache reused
        return time.perf_counter() - start

    pp = best_rate(prefill, args.prompt_tokens)
    decode()  # warm-up
    tg = args.gen_tokens / min(decode() for _ in range(RUNS))

    result = {
        "engine": "llama.cpp",
        "version": llama_cpp.__version__,
        "threads": args.threads,
        "pp_tokens_per_s": round(pp, 2),
        "tg_tokens_per_s": round(tg, 2),
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "kv_type": "f32",
        "flash_attn": False,
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print("llama.cpp (llama-cpp-python %s), %d threads" % (result["version"], args.threads))
        print("pp%d: %.1f tokens/s" % (args.prompt_tokens, pp))
        print("tg%d: %.1f tokens/s" % (args.gen_tokens, tg))


if __name__ == "__main__":
    main()

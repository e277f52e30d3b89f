#!/usr/bin/env python3
"""Time to first token with and without the prefix cache, in one run (not a test).

    tools/bench_prefix_cache.py [--requests 64] [--system-tokens 2048] [--concurrency 4]
                                [--policies full,restkv@256] [--threads 2]

Starts `restkv serve` twice on the same GGUF and threads -- once as is (prefix caching on by
default), once with --no-prefix-caching -- and sends each the same chat requests: one shared
system prompt of about --system-tokens tokens, then a different short question per request,
with each policy of --policies as the request's kv_policy / kv_budget fields. TTFT is
measured on the client (official `openai` client, streamed) from sending to the first content
chunk; a warm-up request first fills the cache. Prints TTFT p50/p90 per (policy, cache) and
the ratio off/on of the p50s, plus the server's usage.prompt_tokens_details.cached_tokens.
"""
import argparse
import concurrent.futures
import pathlib
import random
import statistics
import subprocess
import time

import openai

from server_process import free_port, stop, wait_healthy  # tools/server_process.py

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORDS = ("river stone lantern orchard copper meadow harbor violet summit canyon willow ember "
         "glacier prairie falcon marble thunder cedar lagoon saffron").split()


def system_prompt(tokens, rng):
    # About one token a word (plus a space) for these common words.
    words = [rng.choice(WORDS) for _ in range(tokens)]
    return "You are a helpful assistant. Background notes: " + " ".join(words)


def one(client, system, question, policy, max_tokens):
    extra = {}
    if policy != "full":
        name, budget = policy.split("@")
        extra = {"kv_policy": name, "kv_budget": int(budget)}
    t0 = time.perf_counter()
    ttft = None
    cached = None
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "system", "content": system},
                                   {"role": "user", "content": question}],
        max_tokens=max_tokens, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body=extra)
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - t0
        if chunk.usage is not None:
            details = getattr(chunk.usage, "prompt_tokens_details", None)
            cached = details.cached_tokens if details is not None else None
            prompt_tokens = chunk.usage.prompt_tokens
    return (ttft if ttft is not None else time.perf_counter() - t0), cached, prompt_tokens


def run_server(args, caching, system, questions):
    port = free_port()
    cmd = [str(ROOT / "build" / "restkv"), "serve", "--model", args.model, "--port", str(port),
           "--grpc-port", "0", "--threads", str(args.threads), "--served-model-name", "default",
           "--max-num-seqs", str(args.concurrency)]
    if not caching:
        cmd.append("--no-prefix-caching")
    log = open(pathlib.Path(args.out) / f"server-{'on' if caching else 'off'}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    results = {}
    try:
        wait_healthy(url, proc)
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", timeout=600)
        for policy in args.policies.split(","):
            one(client, system, "Warm-up: say hi.", policy, args.max_tokens)
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                futs = [pool.submit(one, client, system, q, policy, args.max_tokens)
                        for q in questions]
                results[policy] = [f.result() for f in futs]
    finally:
        stop(proc)
    return results


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--system-tokens", type=int, default=2048)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--policies", default="full,restkv@256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench-prefix-out")
    args = ap.parse_args()
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    system = system_prompt(args.system_tokens, rng)
    questions = [f"Question {i}: which of these words comes first: {rng.choice(WORDS)} or "
                 f"{rng.choice(WORDS)}?" for i in range(args.requests)]
    on = run_server(args, True, system, questions)
    off = run_server(args, False, system, questions)
    print(f"{args.requests} requests, concurrency {args.concurrency}, threads {args.threads}, "
          f"prompt ~{on[args.policies.split(',')[0]][0][2]} tokens")
    print(f"{'policy':14}{'cache':>7}{'p50 ms':>10}{'p90 ms':>10}{'cached tok (median)':>22}")
    for policy in args.policies.split(","):
        p50 = {}
        for name, res in (("on", on[policy]), ("off", off[policy])):
            ttfts = [r[0] * 1000 for r in res]
            cached = [r[1] or 0 for r in res]
            p50[name] = pct(ttfts, 0.5)
            print(f"{policy:14}{name:>7}{p50[name]:>10.0f}{pct(ttfts, 0.9):>10.0f}"
                  f"{statistics.median(cached):>22.0f}")
        print(f"{policy:14}{'ratio':>7}{p50['off'] / p50['on']:>10.2f}  (TTFT p50 off / on)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Streaming serving benchmark: restkv serve against llama.cpp's llama-server.

For each concurrency level, starts the server (restkv with its defaults,
llama-server with --parallel equal to the concurrency), runs a closed loop of
N clients that each stream /v1/completions requests one after another, and
reports time to first token, inter-token latency percentiles and output
tokens/s. Both servers get the same GGUF, the same thread count, the same
prompts (each starting with a unique number, so no prefix cache can help) and
the same output length (ignore_eos).

    tools/bench_serving.py --llama-server PATH [--restkv build/restkv]
        [--model GGUF] [--threads 2] [--concurrency 1 8 32] [--max-tokens 128]

Prints one JSON line per (server, concurrency) and a table at the end.
This is a benchmark, not a test: run it on a quiet machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import requests

from server_process import free_port, wait_healthy  # tools/server_process.py

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly "
         "study ancient maps of distant rivers and forgotten mountain towns").split()




def make_prompt(i, words):
    body = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(words))
    return f"Request {i}. {body}. Summarise the text above in one paragraph:"


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)




def one_request(url, model, prompt, max_tokens):
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "ignore_eos": True, "cache_prompt": False}
    t0 = time.perf_counter()
    stamps = []
    with requests.post(url + "/v1/completions", json=body, stream=True, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith(b"data: "):
                continue
            payload = line[6:]
            if payload == b"[DONE]":
                break
            chunk = json.loads(payload)
            choices = chunk.get("choices") or []
            if choices and choices[0].get("text"):
                stamps.append(time.perf_counter())
    end = time.perf_counter()
    if not stamps:
        raise RuntimeError("no tokens streamed")
    return {"ttft": stamps[0] - t0, "itl": [b - a for a, b in zip(stamps, stamps[1:])],
            "tokens": len(stamps), "e2e": end - t0}


def run_load(url, model, concurrency, requests_per_client, max_tokens, prompt_words, base):
    results, errors = [], []
    lock = threading.Lock()

    def client(c):
        for k in range(requests_per_client):
            i = base + c * requests_per_client + k
            try:
                res = one_request(url, model, make_prompt(i, prompt_words), max_tokens)
                with lock:
                    results.append(res)
            except Exception as e:  # counted, never fatal
                with lock:
                    errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttft = [r["ttft"] * 1000 for r in results]
    itl = [x * 1000 for r in results for x in r["itl"]]
    tokens = sum(r["tokens"] for r in results)
    return {"concurrency": concurrency, "requests": len(results), "failed": len(errors),
            "wall_s": wall, "output_tokens": tokens, "output_tokens_per_s": tokens / wall,
            "median_ttft_ms": percentile(ttft, 50), "p90_ttft_ms": percentile(ttft, 90),
            "p99_ttft_ms": percentile(ttft, 99), "median_itl_ms": percentile(itl, 50),
            "p90_itl_ms": percentile(itl, 90), "p99_itl_ms": percentile(itl, 99),
            "mean_itl_ms": statistics.fmean(itl) if itl else float("nan"),
            "errors": errors[:3]}


def start_restkv(args, port):
    cmd = [args.restkv, "serve", "--model", args.model, "--port", str(port), "--grpc-port", "0",
           "--threads", str(args.threads), "--served-model-name", "bench"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_llama(args, port, concurrency):
    ctx = concurrency * args.ctx_per_slot
    cmd = [args.llama_server, "-m", args.model, "--port", str(port), "-t", str(args.threads),
           "-tb", str(args.threads), "-np", str(concurrency), "-c", str(ctx), "--metrics",
           "--alias", "bench", "--no-warmup"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--restkv", default="build/restkv")
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--requests-per-client", type=int, default=0,
                    help="0: 8 at concurrency 1, 4 at 8, 2 at 32")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt-words", type=int, default=150)
    ap.add_argument("--ctx-per-slot", type=int, default=1024)
    args = ap.parse_args()
    if args.model is None:
        args.model = subprocess.check_output(["scripts/fetch-model"], text=True).strip().splitlines()[-1]

    rows = []
    for c in args.concurrency:
        per_client = args.requests_per_client or {1: 8, 8: 4}.get(c, 2)
        for name in ("restkv", "llama.cpp"):
            port = free_port()
            proc = start_restkv(args, port) if name == "restkv" else start_llama(args, port, c)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_healthy(url, proc, timeout=180)
                # One warm-up request so neither side pays first-touch costs.
                one_request(url, "bench", make_prompt(10**6, 8), 4)
                res = run_load(url, "bench", c, per_client, args.max_tokens, args.prompt_words,
                               base=1000 * c)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            res["server"] = name
            print(json.dumps(res), flush=True)
            rows.append(res)

    print(f"\n{'server':10} {'conc':>4} {'req':>4} {'fail':>4} {'out tok/s':>9} "
          f"{'TTFT p50':>9} {'TTFT p99':>9} {'ITL p50':>8} {'ITL p99':>8}")
    for r in rows:
        print(f"{r['server']:10} {r['concurrency']:4d} {r['requests']:4d} {r['failed']:4d} "
              f"{r['output_tokens_per_s']:9.1f} {r['median_ttft_ms']:9.1f} {r['p99_ttft_ms']:9.1f} "
              f"{r['median_itl_ms']:8.1f} {r['p99_itl_ms']:8.1f}")
    by = {(r["server"], r["concurrency"]): r for r in rows}
    for c in args.concurrency:
        a, b = by.get(("restkv", c)), by.get(("llama.cpp", c))
        if a and b and b["output_tokens_per_s"] > 0:
            print(f"concurrency {c}: restkv / llama.cpp output tok/s = "
                  f"{a['output_tokens_per_s'] / b['output_tokens_per_s']:.2f}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Replays one trace against `restkv serve` and llama.cpp's `llama-server` on the same GGUF
and threads, one server at a time, with `restkv bench`, and prints the two summaries side
by side (the issue's closing-note benchmark). Not a test: it takes minutes.

    tools/compare_servers.py --llama-server PATH [--requests 200] [--rate 1.5] [--out DIR]
                             [--sweep 0.5,1,2,4 [--sweep-requests 60]]
                             [--trace mooncake|multiturn] [--no-cache-run]

With --no-cache-run, restkv is also run with --no-prefix-caching, as a third column (the
prefix cache's own effect; llama-server keeps its default prompt cache, `cache_prompt` on).

With --sweep, each server (still up after the replay) is then run at each of those Poisson
rates with the trace's request lengths (fresh prompt text per rate, so no rate is served from
a prompt cache warmed by the one before), and the saturation rate of each -- the most requests
per second it completed -- is printed beside the other's.

The trace (Mooncake JSONL, written to OUT/trace.jsonl) is seeded: Poisson arrivals at
--rate, prompts of mixed lengths (log-uniform 32..768 tokens, a third of them starting
with a shared 512-token block), outputs 8..64 tokens. With --trace multiturn it is a chat replay instead: --conversations
conversations (Poisson starts at --rate) of --turns turns each, --turn-gap seconds apart, each
turn re-sending the whole history (the previous prompt and reply, then a new user message), so
turn k's prompt extends turn k-1's: its hash_ids are the conversation's block ids, and the
prompt builder cuts a block's text as a prefix of the same block's full text.
"""
import argparse
import json
import math
import pathlib
import random
import subprocess

from server_process import free_port, stop, wait_healthy  # tools/server_process.py

ROOT = pathlib.Path(__file__).resolve().parent.parent
KEYS = ["completed", "failed", "duration", "request_throughput", "output_throughput",
        "median_ttft_ms", "p90_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms",
        "median_itl_ms", "p99_itl_ms", "median_e2el_ms", "p99_e2el_ms", "max_concurrent_requests",
        "p99_send_lag_ms"]




def make_trace(path, n, rate, seed):
    rng = random.Random(seed)
    t = 0.0
    next_id = 1
    with open(path, "w") as f:
        for _ in range(n):
            t += rng.expovariate(rate)
            shared = rng.random() < 1 / 3
            input_len = int(math.exp(rng.uniform(math.log(32), math.log(768))))
            if shared:
                input_len = max(input_len, 513)
            blocks = (input_len + 511) // 512
            ids = []
            for b in range(blocks):
                if b == 0 and shared:
                    ids.append(0)
                else:
                    ids.append(next_id)
                    next_id += 1
            f.write(json.dumps({"timestamp": round(t * 1000, 3), "input_length": input_len,
                                "output_length": rng.randint(8, 64), "hash_ids": ids}) + "\n")




def make_multiturn_trace(path, conversations, turns, rate, turn_gap, seed):
    rng = random.Random(seed)
    start = 0.0
    rows = []
    for c in range(conversations):
        start += rng.expovariate(rate)
        length = rng.randint(200, 500)  # system prompt and first question
        for k in range(turns):
            out = rng.randint(16, 48)
            ids = [c * 1000 + 1 + b for b in range((length + 511) // 512)]
            t = start + k * turn_gap + rng.uniform(0, turn_gap / 4)
            rows.append({"timestamp": round(t * 1000, 3), "input_length": length,
                         "output_length": out, "hash_ids": ids})
            length += out + rng.randint(80, 200)  # the reply, then the next question
    rows.sort(key=lambda r: r["timestamp"])
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return len(rows)


def run(name, cmd, port, trace, out, bench_args, sweep, sweep_requests, nice):
    """Starts one server, replays the trace against it, then sweeps it if asked."""
    prefix = ["nice", "-n", str(nice)] if nice else []
    log = open(out / f"{name}.log", "w")
    proc = subprocess.Popen([*prefix, *cmd], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    bench = [*prefix, str(ROOT / "build" / "restkv"), "bench", "--url", url, "--replay", str(trace),
             "--no-progress", *bench_args]
    try:
        wait_healthy(url, proc)
        result = out / f"{name}.json"
        subprocess.run([*bench, "--result", str(result)], check=True)
        replay = json.loads(result.read_text())
        swept = []
        # One bench run a rate, each with its own prompt seed: a rate must not be served from
        # a prompt cache warmed by the previous one (llama-server keeps one per slot).
        for i, rate in enumerate(sweep.split(",") if sweep else []):
            result = out / f"{name}-sweep-{rate}.json"
            subprocess.run([*bench, "--request-rate", rate, "--seed", str(1000 + i), "-n",
                            str(sweep_requests), "--result", str(result)], check=True)
            swept.append((float(rate), json.loads(result.read_text())["summary"]))
        return replay, swept
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model", default=str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--trace", choices=["mooncake", "multiturn"], default="mooncake")
    ap.add_argument("--requests", type=int, default=200, help="mooncake: requests")
    ap.add_argument("--rate", type=float, default=1.5,
                    help="mooncake: requests/s; multiturn: conversation starts/s")
    ap.add_argument("--conversations", type=int, default=12, help="multiturn: conversations")
    ap.add_argument("--turns", type=int, default=6, help="multiturn: turns a conversation")
    ap.add_argument("--turn-gap", type=float, default=20.0, help="multiturn: seconds between turns")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=8, help="llama-server -np (its slots)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="compare-out")
    ap.add_argument("--bench-arg", action="append", default=[], help="extra restkv bench flag")
    ap.add_argument("--no-cache-run", action="store_true",
                    help="also run restkv with --no-prefix-caching")
    ap.add_argument("--sweep", help="then sweep each server over these Poisson rates, e.g. 0.5,1,2")
    ap.add_argument("--sweep-requests", type=int, default=60, help="requests per sweep rate")
    ap.add_argument("--nice", type=int, default=0,
                    help="run servers and clients under nice -n N (on a machine shared with other work)")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trace = out / "trace.jsonl"
    if args.trace == "multiturn":
        n = make_multiturn_trace(trace, args.conversations, args.turns, args.rate, args.turn_gap,
                                 args.seed)
        print(f"multi-turn trace: {args.conversations} conversations x {args.turns} turns = {n} requests")
    else:
        make_trace(trace, args.requests, args.rate, args.seed)
    ctx = 2048
    runs = {}  # name -> (replay, sweep)
    restkv_cmd = lambda port: [str(ROOT / "build" / "restkv"), "serve", "--model", args.model,
                               "--port", str(port), "--grpc-port", "0", "--threads",
                               str(args.threads), "--max-model-len", str(ctx), "--max-num-seqs",
                               str(args.parallel)]
    p = free_port()
    runs["restkv"] = run("restkv", restkv_cmd(p), p, trace, out, args.bench_arg, args.sweep,
                         args.sweep_requests, args.nice)
    if args.no_cache_run:
        p = free_port()
        runs["restkv-nocache"] = run("restkv-nocache", restkv_cmd(p) + ["--no-prefix-caching"], p,
                                     trace, out, args.bench_arg, args.sweep, args.sweep_requests,
                                     args.nice)
    p = free_port()
    # -c is the total context shared by the slots: ctx per slot, as restkv's max-model-len.
    runs["llama-server"] = run("llamacpp", [args.llama_server, "-m", args.model, "--port", str(p),
                                            "-t", str(args.threads), "-tb", str(args.threads),
                                            "-np", str(args.parallel), "-c",
                                            str(ctx * args.parallel), "--metrics"],
                               p, trace, out, args.bench_arg + ["--max-model-len", str(ctx)],
                               args.sweep, args.sweep_requests, args.nice)
    names = list(runs)
    ratios = [("restkv", "llama-server")] + ([("restkv-nocache", "restkv")] if args.no_cache_run else [])
    header = f"{'metric':28}" + "".join(f"{n:>16}" for n in names)
    header += "".join(f"{a + ' / ' + b:>30}" for a, b in ratios)
    print("\n" + header)
    for k in KEYS:
        vals = {n: runs[n][0]["summary"].get(k) for n in names}
        line = f"{k:28}"
        for n in names:
            v = vals[n]
            line += f"{v:>16.2f}" if isinstance(v, float) else f"{str(v):>16}"
        for a, b in ratios:
            x, y = vals[a], vals[b]
            ok = isinstance(x, (int, float)) and isinstance(y, (int, float)) and y
            line += f"{x / y:>30.2f}" if ok else f"{'-':>30}"
        print(line)
    if args.sweep:
        print(f"\nsweep ({args.sweep_requests} requests a rate, Poisson): completed req/s, median TTFT ms")
        print(f"{'offered req/s':>14}" + "".join(f"{n:>18}" for n in names))
        cell = lambda s: f"{s['request_throughput']:.2f} / {s['median_ttft_ms']:.0f}"
        for i, (rate, _) in enumerate(runs[names[0]][1]):
            print(f"{rate:>14}" + "".join(f"{cell(runs[n][1][i][1]):>18}" for n in names))
        for name in names:
            swept = runs[name][1]
            best = max(s["request_throughput"] for _, s in swept)
            knee = next((r for r, s in swept if s["request_throughput"] < 0.9 * r), None)
            print(f"{name}: saturation {best:.2f} req/s completed at most; "
                  + (f"first rate not sustained (<90 % completed): {knee}" if knee else "every rate sustained"))
    for name in (n for n in names if n.startswith("restkv")):
        delta = runs[name][0].get("server_metrics", {}).get("delta", {})
        print(f"\n{name} /metrics delta: " + json.dumps(
            {k: v for k, v in delta.items() if "preempt" in k or "evict" in k or "prefix_cache" in k}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Replays one trace against `restkv serve` and llama.cpp's `llama-server` on the same GGUF
and threads, one server at a time, with `restkv bench`, and prints the two summaries side
by side (the issue's closing-note benchmark). Not a test: it takes minutes.

    tools/compare_servers.py --llama-server PATH [--requests 200] [--rate 1.5] [--out DIR]
                             [--sweep 0.5,1,2,4 [--sweep-requests 60]]

With --sweep, each server (still up after the replay) is then run at each of those Poisson
rates with the trace's request lengths (fresh prompt text per rate, so no rate is served from
a prompt cache warmed by the one before), and the saturation rate of each -- the most requests
per second it completed -- is printed beside the other's.

The trace (Mooncake JSONL, written to OUT/trace.jsonl) is seeded: Poisson arrivals at
--rate, prompts of mixed lengths (log-uniform 32..768 tokens, a third of them starting
with a shared 512-token block), outputs 8..64 tokens.
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
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rate", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=8, help="llama-server -np (its slots)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="compare-out")
    ap.add_argument("--bench-arg", action="append", default=[], help="extra restkv bench flag")
    ap.add_argument("--sweep", help="then sweep each server over these Poisson rates, e.g. 0.5,1,2")
    ap.add_argument("--sweep-requests", type=int, default=60, help="requests per sweep rate")
    ap.add_argument("--nice", type=int, default=0,
                    help="run servers and clients under nice -n N (on a machine shared with other work)")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trace = out / "trace.jsonl"
    make_trace(trace, args.requests, args.rate, args.seed)
    ctx = 2048
    p1 = free_port()
    restkv = run("restkv", [str(ROOT / "build" / "restkv"), "serve", "--model", args.model,
                            "--port", str(p1), "--grpc-port", "0", "--threads", str(args.threads),
                            "--max-model-len", str(ctx), "--max-num-seqs", str(args.parallel)],
                 p1, trace, out, args.bench_arg, args.sweep, args.sweep_requests, args.nice)
    p2 = free_port()
    # -c is the total context shared by the slots: ctx per slot, as restkv's max-model-len.
    llama = run("llamacpp", [args.llama_server, "-m", args.model, "--port", str(p2), "-t",
                             str(args.threads), "-tb", str(args.threads), "-np", str(args.parallel),
                             "-c", str(ctx * args.parallel), "--metrics"],
                p2, trace, out, args.bench_arg + ["--max-model-len", str(ctx)], args.sweep,
                args.sweep_requests, args.nice)
    restkv, restkv_sweep = restkv
    llama, llama_sweep = llama
    print(f"\n{'metric':28}{'restkv':>14}{'llama-server':>14}{'ratio':>9}")
    for k in KEYS:
        a, b = restkv["summary"].get(k), llama["summary"].get(k)
        ratio = f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"
        fa = f"{a:.2f}" if isinstance(a, float) else str(a)
        fb = f"{b:.2f}" if isinstance(b, float) else str(b)
        print(f"{k:28}{fa:>14}{fb:>14}{ratio:>9}")
    if args.sweep:
        print(f"\nsweep ({args.sweep_requests} requests a rate, Poisson): completed req/s, median TTFT ms")
        print(f"{'offered req/s':>14}{'restkv':>18}{'llama-server':>18}")
        for (rate, a), (_, b) in zip(restkv_sweep, llama_sweep):
            cell = lambda s: f"{s['request_throughput']:.2f} / {s['median_ttft_ms']:.0f}"
            print(f"{rate:>14}{cell(a):>18}{cell(b):>18}")
        for name, swept in (("restkv", restkv_sweep), ("llama-server", llama_sweep)):
            best = max(s["request_throughput"] for _, s in swept)
            knee = next((r for r, s in swept if s["request_throughput"] < 0.9 * r), None)
            print(f"{name}: saturation {best:.2f} req/s completed at most; "
                  + (f"first rate not sustained (<90 % completed): {knee}" if knee else "every rate sustained"))
    print("\nrestkv /metrics delta: " + json.dumps({k: v for k, v in restkv.get("server_metrics", {}).get("delta", {}).items() if "preempt" in k or "evict" in k}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Mixed load for the step-time budget (--max-step-ms): short streaming requests from a
closed loop of clients while long prompts arrive every few seconds, against restkv with
and without --max-step-ms (or an older restkv binary as the baseline), for each KV
policy. Prints, per configuration, ITL p50/p99/max of the short streams (with a
short-only run for reference), TTFT p50/p99 of both classes and the total output
tokens/s. With --llama-server, the same load also runs against llama.cpp's server
(--parallel slots, default 16), once per round.

Configurations run one after another in one process, on the same machine, alternating
baseline and budget per policy, so the ratios compare like with like on a shared box.

  tools/bench_step_budget.py --restkv build/restkv --baseline-bin /tmp/restkv-main \
      --short-requests 32 --long-requests 3 --long-len 4000 --json out.json
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_process import free_port, wait_healthy  # noqa: E402


def bench(restkv, url, out, args):
    return subprocess.Popen([restkv, "bench", "--url", url, "--no-progress", "--result", out,
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc, what):
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"{what}: restkv bench failed ({proc.returncode}): {err[-2000:]}")


def summary(path):
    with open(path) as f:
        d = json.load(f)
    s = d["summary"]
    itls = [g for r in d["requests"] if r.get("ok") for g in r.get("itl_ms", [])]
    return {
        "completed": s["completed"], "failed": s["failed"],
        "p50_itl_ms": s["median_itl_ms"], "p99_itl_ms": s["p99_itl_ms"],
        "max_itl_ms": max(itls) if itls else 0.0,
        "p50_ttft_ms": s["median_ttft_ms"], "p99_ttft_ms": s["p99_ttft_ms"],
        "output_tokens": s["total_output_tokens"],
        "first_sent_s": min(r["sent_s"] for r in d["requests"]),
        "last_done_s": max(r["done_s"] for r in d["requests"]),
    }


def restkv_cmd(o, binary, serve_args):
    return lambda port: [binary, "serve", "--port", str(port), "--grpc-port", "0", "--threads",
                         str(o.threads), "--model", o.model, *serve_args]


def llama_server_cmd(o):
    # -c is the context all slots share: each gets room for the longest prompt and its output.
    per_slot = int(o.long_len * 1.12) + 256
    return lambda port: [o.llama_server, "-m", o.model, "--port", str(port), "-t", str(o.threads),
                         "-tb", str(o.threads), "-np", str(o.parallel), "-c",
                         str(per_slot * o.parallel)]


def run_config(o, name, command, tmp, short_alone):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    proc = subprocess.Popen(command(port), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, proc)
        short = ["--max-concurrency", str(o.clients), "--input-len", "160", "--range-ratio",
                 "0.6", "--output-len", "128", "--seed", "1"]
        result = {"name": name}
        if short_alone:
            path = os.path.join(tmp, f"{name}.alone.json")
            p = bench(o.restkv, url, path, [*short, "-n", str(o.clients * 2)])
            finish(p, name + " short alone")
            result["short_alone"] = summary(path)
        spath = os.path.join(tmp, f"{name}.short.json")
        lpath = os.path.join(tmp, f"{name}.long.json")
        start = time.time()
        lp = bench(o.restkv, url, lpath, ["--request-rate", str(1.0 / o.long_every), "-n",
                                          str(o.long_requests), "--input-len", str(o.long_len),
                                          "--range-ratio", "0.12", "--output-len", "24",
                                          "--seed", "2", "--request-timeout", "1800",
                                          "--stall-timeout", "600"])
        sp = bench(o.restkv, url, spath, [*short, "-n", str(o.short_requests),
                                          "--request-timeout", "1800", "--stall-timeout", "600"])
        finish(sp, name + " short")
        finish(lp, name + " long")
        result["wall_s"] = time.time() - start
        result["short"] = summary(spath)
        result["long"] = summary(lpath)
        tokens = result["short"]["output_tokens"] + result["long"]["output_tokens"]
        result["output_tok_s"] = tokens / result["wall_s"]
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--restkv", default="build/restkv", help="the restkv binary under test")
    ap.add_argument("--baseline-bin", default="",
                    help="restkv binary for the baseline (default: --restkv with --max-step-ms 0)")
    ap.add_argument("--model", default=os.environ.get("RESTKV_MODEL",
                                                      "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-step-ms", default="-1", help="the budget under test (-1: default)")
    ap.add_argument("--clients", type=int, default=8, help="short streaming clients")
    ap.add_argument("--short-requests", type=int, default=32)
    ap.add_argument("--long-requests", type=int, default=3)
    ap.add_argument("--long-len", type=int, default=4000, help="long prompt tokens (±12 %%)")
    ap.add_argument("--long-every", type=float, default=8.0, help="mean seconds between long prompts")
    ap.add_argument("--policies", default="full,restkv@512")
    ap.add_argument("--short-alone", action="store_true",
                    help="also a short-only run (no long prompts) before each budget config")
    ap.add_argument("--rounds", type=int, default=1, help="repeat baseline, budget this often")
    ap.add_argument("--llama-server", default="",
                    help="also run the same load against llama.cpp's llama-server at this path")
    ap.add_argument("--parallel", type=int, default=16, help="llama-server -np (its slots)")
    ap.add_argument("--json", default="", help="write every result here")
    o = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(o.rounds):
            for policy in o.policies.split(","):
                kind, _, budget = policy.partition("@")
                kv = ["--kv-policy", kind] + (["--kv-budget", budget] if budget else [])
                base_bin = o.baseline_bin or o.restkv
                base_args = kv + ([] if o.baseline_bin else ["--max-step-ms", "0"])
                for name, command, alone in (
                        (f"baseline {policy}", restkv_cmd(o, base_bin, base_args), False),
                        (f"budget {policy}",
                         restkv_cmd(o, o.restkv, kv + ["--max-step-ms", o.max_step_ms]),
                         o.short_alone)):
                    r = run_config(o, name, command, tmp, alone)
                    r["policy"], r["round"] = policy, rnd
                    results.append(r)
                    print(json.dumps(r), flush=True)
            if o.llama_server:
                r = run_config(o, "llama-server", llama_server_cmd(o), tmp, o.short_alone)
                r["policy"], r["round"] = "llama-server", rnd
                results.append(r)
                print(json.dumps(r), flush=True)
    print()
    print(f"{'config':24} {'ITL p50':>8} {'ITL p99':>8} {'ITL max':>8} {'TTFT p50':>9} "
          f"{'TTFT p99':>9} {'long TTFT p50':>13} {'long p99':>9} {'tok/s':>7}")
    for r in results:
        s, lg = r["short"], r["long"]
        print(f"{r['name'] + ' #' + str(r['round']):24} {s['p50_itl_ms']:8.0f} {s['p99_itl_ms']:8.0f} {s['max_itl_ms']:8.0f} "
              f"{s['p50_ttft_ms']:9.0f} {s['p99_ttft_ms']:9.0f} {lg['p50_ttft_ms']:13.0f} "
              f"{lg['p99_ttft_ms']:9.0f} {r['output_tok_s']:7.1f}")
        if "short_alone" in r:
            a = r["short_alone"]
            print(f"{'  (short alone)':24} {a['p50_itl_ms']:8.0f} {a['p99_itl_ms']:8.0f} "
                  f"{a['max_itl_ms']:8.0f} {a['p50_ttft_ms']:9.0f} {a['p99_ttft_ms']:9.0f}")
    if o.json:
        with open(o.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

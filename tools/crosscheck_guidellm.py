#!/usr/bin/env python3
"""Cross-checks `restkv bench` against guidellm (PyPI) on the same server and load: a
synthetic workload (fixed prompt and output lengths, requests at a constant rate: guidellm's
`constant` profile; restkv bench's gamma gaps with shape 1e6, i.e. constant to 0.1 %) measured
by both tools one after the other, with their metric definitions mapped onto each other.
(guidellm's `poisson` profile is not used: its seeded schedule is its own, and a 60-request
sample of it can offer a rate far from the one asked for.)

    tools/crosscheck_guidellm.py [--url http://127.0.0.1:PORT] [--rate 1] [--requests 60]
                                 [--input-len 256] [--output-len 64] [--out DIR]

Without --url it starts `restkv serve` on the default model itself. guidellm runs from its
own virtual environment (--venv, default .venv-bench; created with
`python3 -m venv .venv-bench && .venv-bench/bin/pip install guidellm gguf sentencepiece`),
because it pins its own transformers/torch. It needs the tokenizer locally: the script
converts the GGUF's tokenizer to a Hugging Face tokenizer directory with transformers.

Definitions mapped (both tools log every request; the table compares like with like):
- output tokens/s: total output tokens / benchmark duration, both tools.
- TTFT: both from the request's send time to the first streamed token.
- client CPU: the CPU seconds each tool's process tree used, since on a small machine a
  client that needs a core of its own slows the server it measures.
- restkv bench TPOT = (e2e - TTFT) / (output - 1) (vLLM's); guidellm's "TPOT" is
  e2e / output (the first token included), so it is compared with restkv's e2e / output,
  computed here from restkv's per-request records.
With --pin the server runs on CPU 0 with one thread and each client on CPU 1, so that neither
tool's own CPU use slows the server (needs taskset, util-linux). Not a test: it takes minutes.
"""
import argparse
import json
import os
import resource
import pathlib
import statistics
import subprocess
import sys

from server_process import free_port, stop, wait_healthy  # tools/server_process.py

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"






def hf_tokenizer(venv, model, out):
    """A Hugging Face tokenizer directory converted from the GGUF (guidellm needs one)."""
    if (out / "tokenizer.json").exists():
        return out
    code = ("import sys; from transformers import AutoTokenizer; "
            "AutoTokenizer.from_pretrained(sys.argv[1], gguf_file=sys.argv[2]).save_pretrained(sys.argv[3])")
    subprocess.run([str(venv / "bin" / "python"), "-c", code, str(model.parent), model.name, str(out)],
                   check=True)
    return out


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def restkv_side(url, args, out):
    result = out / "restkv-bench.json"
    cpu0 = children_cpu_s()
    subprocess.run([*args.client_prefix, str(ROOT / "build" / "restkv"), "bench", "--url", url, "--endpoint", "/v1/completions",
                    "--input-len", str(args.input_len), "--output-len", str(args.output_len),
                    "--request-rate", str(args.rate), "--burstiness", "1e6", "-n", str(args.requests), "--seed", str(args.seed),
                    "--no-progress", "--no-metrics", "--result", str(result)], check=True,
                   stdout=subprocess.DEVNULL)
    cpu = children_cpu_s() - cpu0
    d = json.loads(result.read_text())
    s = d["summary"]
    ok = [r for r in d["requests"] if r["ok"]]
    per_token = [r["e2el_ms"] / r["output_tokens"] for r in ok if r.get("output_tokens")]
    return {
        "completed": s["completed"],
        "duration_s": s["duration"],
        "output_tok_s": s["output_throughput"],
        "median_ttft_ms": s["median_ttft_ms"],
        "mean_ttft_ms": s["mean_ttft_ms"],
        "median_e2e_per_output_token_ms": statistics.median(per_token) if per_token else None,
        "median_tpot_ms (vLLM definition)": s["median_tpot_ms"],
        "median_e2el_ms": s["median_e2el_ms"],
        "mean_prompt_tokens": s["total_input_tokens"] / max(1, s["completed"]),
        "client_cpu_s": cpu,
    }


def guidellm_side(url, args, tok, out):
    result = out / "guidellm.json"
    cmd = [*args.client_prefix, str(args.venv / "bin" / "guidellm"), "run",
           "--backend", f"kind=openai_http,target={url},request_format=/v1/completions",
           "--tokenizer", f"kind=huggingface_auto,model={tok}",
           "--data", f"kind=synthetic_text,prompt_tokens={args.input_len},output_tokens={args.output_len}",
           "--profile", f"kind=constant,rate={args.rate}",
           "--constraint", f"kind=max_requests,count={args.requests}",
           "--output", f"kind=json,path={result}", "--disable-progress"]
    env = dict(os.environ, GUIDELLM__MAX_WORKER_PROCESSES=str(args.guidellm_workers))
    cpu0 = children_cpu_s()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    cpu = children_cpu_s() - cpu0
    b = json.loads(result.read_text())["benchmarks"][0]
    m = b["metrics"]
    ok = lambda key: m[key]["successful"]
    return {
        "completed": int(ok("request_latency")["count"]),
        "duration_s": b["duration"],
        "output_tok_s": ok("output_token_count")["total_sum"] / b["duration"],
        "median_ttft_ms": ok("time_to_first_token_ms")["median"],
        "mean_ttft_ms": ok("time_to_first_token_ms")["mean"],
        "median_e2e_per_output_token_ms": ok("time_per_output_token_ms")["median"],
        "median_tpot_ms (vLLM definition)": ok("inter_token_latency_ms")["median"],
        "median_e2el_ms": ok("request_latency")["median"] * 1000,
        "mean_prompt_tokens": ok("prompt_token_count")["mean"],
        "client_cpu_s": cpu,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running OpenAI-compatible server (default: start restkv serve)")
    ap.add_argument("--model", type=pathlib.Path, default=MODEL)
    ap.add_argument("--venv", type=pathlib.Path, default=ROOT / ".venv-bench")
    ap.add_argument("--rate", type=float, default=1.0)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--input-len", type=int, default=256)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--guidellm-workers", type=int, default=1,
                    help="guidellm worker processes (its default, 10, costs a 2-core machine a core)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("crosscheck-out"))
    ap.add_argument("--pin", action="store_true",
                    help="server on CPU 0 (one thread), clients on CPU 1")
    args = ap.parse_args()
    args.client_prefix = ["taskset", "-c", "1"] if args.pin else []
    if args.pin:
        args.threads = 1
    if not (args.venv / "bin" / "guidellm").exists():
        sys.exit(f"no guidellm in {args.venv}: python3 -m venv {args.venv} && "
                 f"{args.venv}/bin/pip install guidellm gguf sentencepiece")
    args.out.mkdir(parents=True, exist_ok=True)
    tok = hf_tokenizer(args.venv, args.model, args.out / "tokenizer")
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(args.out / "serve.log", "w")
        server_prefix = ["taskset", "-c", "0"] if args.pin else []
        proc = subprocess.Popen([*server_prefix, str(ROOT / "build" / "restkv"), "serve", "--model", str(args.model),
                                 "--port", str(port), "--grpc-port", "0", "--threads", str(args.threads)],
                                stdout=log, stderr=subprocess.STDOUT)
        wait_healthy(url, proc)
    try:
        a = restkv_side(url, args, args.out)
        b = guidellm_side(url, args, tok, args.out)
    finally:
        if proc is not None:
            stop(proc)
    print(f"{args.requests} requests, {args.input_len} in / {args.output_len} out tokens, "
          f"constant {args.rate} req/s, against {url}" + (" (server on CPU 0, clients on CPU 1)" if args.pin else ""))
    print(f"{'metric':36}{'restkv bench':>14}{'guidellm':>14}{'guidellm/restkv':>17}")
    for k in a:
        x, y = a[k], b[k]
        ratio = f"{y / x:.3f}" if x and y is not None else "-"
        fx = f"{x:.2f}" if isinstance(x, float) else str(x)
        fy = f"{y:.2f}" if isinstance(y, float) else str(y)
        print(f"{k:36}{fx:>14}{fy:>14}{ratio:>17}")
    (args.out / "crosscheck.json").write_text(json.dumps({"restkv_bench": a, "guidellm": b}, indent=1))


if __name__ == "__main__":
    main()

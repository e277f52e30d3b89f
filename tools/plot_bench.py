#!/usr/bin/env python3
"""Draws a `restkv bench` result (--result JSON) as PNGs: latency CDFs (TTFT, TPOT, ITL,
E2E), completed-request and output-token throughput over time, and requests in flight
over time (throughput counts each request, and its tokens, in the second it finished).
Called by `restkv bench --plot DIR`; also usable alone:

    tools/plot_bench.py result.json DIR
"""
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def runs(result):
    """(label, requests) per run: one, or one per swept rate."""
    if "sweep" in result:
        return [(f"{s['request_rate']} req/s", s["requests"]) for s in result["sweep"]]
    return [("run", result["requests"])]


def cdf(ax, values, label):
    values = sorted(v for v in values if v is not None)
    if not values:
        return
    n = len(values)
    ax.step(values, [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})")


def plot_cdfs(result, out):
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, (key, title) in zip(axes.flat, [("ttft_ms", "Time to first token"),
                                             ("tpot_ms", "Time per output token"),
                                             ("itl_ms", "Inter-token latency"),
                                             ("e2el_ms", "End-to-end latency")]):
        for label, reqs in runs(result):
            ok = [r for r in reqs if r["ok"]]
            vals = [x for r in ok for x in r["itl_ms"]] if key == "itl_ms" else [r[key] for r in ok]
            cdf(ax, vals, label)
        ax.set_title(title)
        ax.set_xlabel("ms (from the intended send time)" if key in ("ttft_ms", "e2el_ms") else "ms")
        ax.set_ylabel("fraction of requests" if key != "itl_ms" else "fraction of gaps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency_cdf.png", dpi=100)
    plt.close(fig)


def plot_over_time(result, out, bin_s=1.0):
    fig, axes = plt.subplots(3, 1, figsize=(11, 10), sharex=False)
    for label, reqs in runs(result):
        if not reqs:
            continue
        end = max(r["done_s"] for r in reqs)
        bins = int(end / bin_s) + 1
        done = [0] * bins
        tokens = [0] * bins
        for r in reqs:
            if r["ok"]:
                b = min(int(r["done_s"] / bin_s), bins - 1)
                done[b] += 1
                tokens[b] += max(r["output_tokens"], 0)
        t = [i * bin_s for i in range(bins)]
        axes[0].plot(t, [d / bin_s for d in done], label=label)
        axes[1].plot(t, [k / bin_s for k in tokens], label=label)
        events = sorted([(r["sent_s"], 1) for r in reqs] + [(r["done_s"], -1) for r in reqs])
        xs, ys, now = [0.0], [0], 0
        for x, d in events:
            now += d
            xs.append(x)
            ys.append(now)
        axes[2].step(xs, ys, where="post", label=label)
    for ax, title, unit in [(axes[0], "Completed requests", "req/s"),
                            (axes[1], "Output tokens", "tok/s"),
                            (axes[2], "Requests in flight", "requests")]:
        ax.set_title(title)
        ax.set_xlabel("seconds from the start of the run")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "over_time.png", dpi=100)
    plt.close(fig)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    result = json.loads(pathlib.Path(argv[1]).read_text())
    out = pathlib.Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    plot_cdfs(result, out)
    plot_over_time(result, out)
    print(f"Plots: {out / 'latency_cdf.png'}, {out / 'over_time.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

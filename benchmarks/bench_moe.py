"""Training time, accuracy under selection rules, and step throughput of the default MoEs.

Writes ``benchmarks/results/moe.json`` and ``benchmarks/results/moe.md``.

Trains the default ``digits`` and ``modrec`` models from scratch in a temporary cache (so the
time is the first-use cost), reports test accuracy with top-1, top-2, all experts, only the least
relevant expert, one random expert and no expert, then times one layer step
(``relevance`` + ``expert_outputs`` + ``combine``) and the bit payload round trip on a batch of
tokens. Also reports the retained relevance mass of the default ``trace``.

Usage: ``python benchmarks/bench_moe.py [--tokens N] [--repeats R]``
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from dmoe.moe import load_default_moe
from dmoe.moe.train import library_versions

RESULTS = Path(__file__).resolve().parent / "results"
RULES = (("top_k", 1), ("top_k", 2), ("all", 1), ("least_relevant", 1), ("random", 1), ("none", 1))


def _best_of(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_task(task, cache_dir, num_tokens, repeats):
    start = time.perf_counter()
    model = load_default_moe(task, cache_dir=cache_dir)
    first_use = time.perf_counter() - start
    x, y = model.test_data()
    accuracy = {f"{rule}-{k}" if rule in ("top_k", "random") else rule:
                model.accuracy(x, y, selection=rule, k=k) for rule, k in RULES}
    if task == "modrec":
        snr = model.data.extra_test["snr_db"]
        accuracy["top_k-2 by snr_db"] = {
            float(s): model.accuracy(x[snr == s], y[snr == s], "top_k", 2) for s in np.unique(snr)}
    tokens = x[np.arange(num_tokens) % len(x)]
    hidden = model.embed(tokens)
    mask = model.select(model.relevance(0, hidden), "top_k", 2)

    def step():
        model.relevance(0, hidden)
        model.combine(0, hidden, model.expert_outputs(0, hidden), mask)

    def payload():
        model.from_bits(model.to_bits(hidden, 8), 8)

    step()
    return {
        "first_use_seconds": first_use,
        "train_seconds": model.network.training_record.get("train_seconds"),
        "config": model.config.to_dict(),
        "num_test": int(len(y)),
        "accuracy": accuracy,
        "layer_step_tokens_per_second": num_tokens / _best_of(step, repeats),
        "payload_round_trip_tokens_per_second": num_tokens / _best_of(payload, repeats),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "versions": library_versions(), "tokens": args.tokens, "tasks": {}}
    with tempfile.TemporaryDirectory() as cache_dir:
        for task in ("digits", "modrec"):
            results["tasks"][task] = bench_task(task, cache_dir, args.tokens, args.repeats)
        trace = load_default_moe("trace", cache_dir=cache_dir)
        tokens, target = trace.test_data()
        results["tasks"]["trace"] = {"retained_mass": {
            f"{rule}-{k}" if rule in ("top_k", "random") else rule:
            trace.accuracy(tokens, target, selection=rule, k=k) for rule, k in RULES}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "moe.json").write_text(json.dumps(results, indent=2))
    lines = ["# MoE benchmark", "",
             f"{results['cpus']} CPUs, versions {results['versions']}, batch {args.tokens} tokens.", "",
             "| task | first use (s) | top-1 | top-2 | all | least relevant | random-1 | none "
             "| layer step (tokens/s) | 8-bit payload round trip (tokens/s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for task in ("digits", "modrec"):
        r = results["tasks"][task]
        a = r["accuracy"]
        lines.append(f"| {task} | {r['first_use_seconds']:.1f} | {a['top_k-1']:.3f} | {a['top_k-2']:.3f} "
                     f"| {a['all']:.3f} | {a['least_relevant']:.3f} | {a['random-1']:.3f} "
                     f"| {a['none']:.3f} | {r['layer_step_tokens_per_second']:.0f} "
                     f"| {r['payload_round_trip_tokens_per_second']:.0f} |")
    m = results["tasks"]["trace"]["retained_mass"]
    lines.append(f"| trace (retained mass) | - | {m['top_k-1']:.3f} | {m['top_k-2']:.3f} | {m['all']:.3f} "
                 f"| {m['least_relevant']:.3f} | {m['random-1']:.3f} | {m['none']:.3f} | - | - |")
    (RESULTS / "moe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("modrec top-2 accuracy by SNR (dB):", results["tasks"]["modrec"]["accuracy"]["top_k-2 by snr_db"])


if __name__ == "__main__":
    main()

"""Does expert choice matter in the default ``multidomain`` transformer MoE? The numbers.

Writes ``benchmarks/results/multidomain.json`` and ``benchmarks/results/multidomain.md``.

Trains (or reads from the cache) the default ``multidomain`` model and measures through the step
API (``route`` / ``expert_outputs`` / ``combine`` / ``evaluate``), on the whole test split, the
exact-match accuracy over answer positions, overall and per domain, when every layer uses:
the top-2 set, the top-1 expert, the second most relevant expert alone, a uniformly random pair
(drawn per position and layer), the least relevant expert alone, all experts and no expert. Then
per layer the mutual information between domain and top-1 expert and each domain's share on its
most used expert, and the layer sensitivity (``dmoe.moe.layer_sensitivity``).

Usage: ``python benchmarks/bench_multidomain.py [--cache-dir DIR]`` (an empty DIR measures the
training time of a first use; the machine load is recorded with the results).
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from dmoe.moe import layer_sensitivity, load_default_moe, routing_concentration

RESULTS = Path(__file__).resolve().parent / "results"


def _second_alone(model):
    def rule(layer, relevance):
        return model.select(relevance, "top_k", k=2) & ~model.select(relevance, "top_k", k=1)
    return rule


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    load_before = os.getloadavg()
    start = time.perf_counter()
    model = load_default_moe("multidomain", cache_dir=args.cache_dir)
    first_use = time.perf_counter() - start
    x, y = model.test_data()
    rules = {"top-2": ("top_k", 2), "top-1": ("top_k", 1), "second alone": (_second_alone(model), 1),
             "random pair": ("random", 2), "least relevant alone": ("least_relevant", 1),
             f"all {model.num_experts}": ("all", 1), "none": ("none", 1)}
    accuracy = {}
    for name, (rule, k) in rules.items():
        counts = model.run(x, y, rule, k, seed=0)
        accuracy[name] = {key: correct / total for key, (correct, total) in counts.items()}
        accuracy[name]["counts"] = {key: list(value) for key, value in counts.items()}
    concentration = routing_concentration(model, x, y)
    sensitivity = layer_sensitivity(model, x, y)
    result = {
        "config": model.config.to_dict(),
        "training": model.network.training_record,
        "first_use_s": first_use,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "test_sequences": int(len(x)), "answer_positions": int((y >= 0).sum()),
        "accuracy": accuracy,
        "mutual_information_bits": concentration["mutual_information_bits"].tolist(),
        "top_share": concentration["top_share"].tolist(), "domains": concentration["domains"],
        "layer_sensitivity": sensitivity.tolist(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multidomain.json").write_text(json.dumps(result, indent=1))
    domains = concentration["domains"]
    lines = ["| rule | all | " + " | ".join(domains) + " |",
             "|---|---|" + "---|" * len(domains)]
    for name, values in accuracy.items():
        lines.append(f"| {name} | {values['accuracy']:.3f} | "
                     + " | ".join(f"{values['accuracy_' + d]:.3f}" for d in domains) + " |")
    lines += ["", "| layer | I(domain; top-1) bits | sensitivity | " + " | ".join(
        f"share {d}" for d in domains) + " |", "|---|---|---|" + "---|" * len(domains)]
    for layer in range(model.num_layers):
        lines.append(f"| {layer} | {concentration['mutual_information_bits'][layer]:.2f} | "
                     f"{sensitivity[layer]:.3f} | " + " | ".join(
                         f"{v:.2f}" for v in concentration["top_share"][layer]) + " |")
    record = model.network.training_record
    lines += ["", f"training {record.get('train_seconds', float('nan')):.0f} s, first use "
              f"{first_use:.0f} s, load average before {load_before[0]:.1f}"]
    (RESULTS / "multidomain.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""``dmoe select-demo``: random P1 instances solved by every selection scheme, as one table.

The instances mimic one DMoE round: softmax gate scores over K experts and link energies that
fade like a wireless channel (``docs/scheduler.md``, "Demo"). Pure numpy/scipy: no TensorFlow.
"""

import math
import time

import numpy as np

__all__ = ["add_arguments", "run", "random_instances"]

_COST_MODELS = ("exponential", "lognormal")


def add_arguments(parser):
    """Register the options of ``dmoe select-demo`` on an ``argparse`` parser."""
    parser.add_argument("--instances", type=int, default=200,
                        help="number of random P1 instances (default: 200)")
    parser.add_argument("--experts", type=int, default=16, help="K, experts per instance (default: 16)")
    parser.add_argument("--max-experts", type=int, default=4, help="D, most experts per set (default: 4)")
    parser.add_argument("--importance", type=float, default=0.9,
                        help="rho in [0, 1]: gamma = rho x top-D relevance (default: 0.9)")
    parser.add_argument("--cost-model", choices=_COST_MODELS, default="exponential",
                        help="link-energy distribution: exponential (Rayleigh fading) or "
                             "lognormal (shadowing, sigma 8 dB) (default: exponential)")
    parser.add_argument("--gate-temperature", type=float, default=1.0,
                        help="softmax temperature of the gate; smaller is peakier (default: 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--no-milp", action="store_true", help="skip the HiGHS reference")


def random_instances(num_instances, num_experts, seed, cost_model="exponential",
                     gate_temperature=1.0):
    r"""Random P1 data: softmax relevance and channel-like costs.

    Parameters
    ----------
    num_instances, num_experts : int
        Batch size B and number of experts K.
    seed : int
        Seed of ``numpy.random.default_rng``.
    cost_model : str
        ``"exponential"``: unit-mean exponential costs, the energy ``~ 1 / |h|^2``-like spread of
        Rayleigh links normalised per link; ``"lognormal"``: log-normal with 8 dB spread.
    gate_temperature : float
        Softmax temperature applied to standard-normal router logits.

    Output
    ------
    relevance : [B, K], float64
        Rows on the simplex.
    cost : [B, K], float64
        Positive costs.
    """
    if num_instances < 1 or num_experts < 1:
        raise ValueError("instances and experts must be >= 1")
    if not gate_temperature > 0:
        raise ValueError(f"gate temperature must be > 0, got {gate_temperature}")
    if cost_model not in _COST_MODELS:
        raise ValueError(f"cost model must be one of {_COST_MODELS}, got {cost_model!r}")
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((num_instances, num_experts)) / gate_temperature
    logits -= logits.max(axis=1, keepdims=True)
    relevance = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if cost_model == "exponential":
        cost = rng.exponential(size=(num_instances, num_experts))
    else:
        cost = rng.lognormal(sigma=8.0 * math.log(10.0) / 10.0, size=(num_instances, num_experts))
    return relevance, cost


def _schemes(problem, max_experts, seed, with_milp):
    from dmoe.scheduler import (brute_force, channel_only, des, milp_reference, random_selection,
                                top_k, weighted_sum, wlr)
    schemes = [("DES (exact)", lambda: des(problem))]
    if with_milp:
        schemes.append(("MILP / HiGHS (exact)", lambda: milp_reference(problem)))
    subsets = sum(math.comb(problem.num_experts, m)
                  for m in range(1, problem.effective_max_experts + 1))
    if subsets <= 20_000:
        schemes.append(("brute force (exact)", lambda: brute_force(problem)))
    for k in sorted({1, 2, max_experts} & set(range(1, problem.num_experts + 1))):
        schemes.append((f"Top-{k}", lambda k=k: top_k(problem, k)))
    schemes += [
        ("channel-only", lambda: channel_only(problem)),
        ("random", lambda: random_selection(problem, np.random.default_rng(seed + 1))),
        ("weighted sum (lam 0.5)", lambda: weighted_sum(problem, 0.5)),
        ("WLR (relevance/latency)", lambda: wlr(problem)),
    ]
    return schemes


def run(args):
    """Solve the random instances with every scheme and print the table; returns 0."""
    from dmoe.scheduler import SelectionProblem

    if args.instances < 1:
        raise ValueError(f"--instances must be >= 1, got {args.instances}")
    if args.experts < 1:
        raise ValueError(f"--experts must be >= 1, got {args.experts}")
    relevance, cost = random_instances(args.instances, args.experts, args.seed, args.cost_model,
                                       args.gate_temperature)
    problem = SelectionProblem(relevance, cost, max_experts=args.max_experts,
                               importance=args.importance)
    rows = []
    optimum = None
    for name, solve in _schemes(problem, args.max_experts, args.seed, not args.no_milp):
        start = time.perf_counter()
        result = solve()
        per_instance_us = (time.perf_counter() - start) / args.instances * 1e6
        if optimum is None:
            optimum = result.cost
        feasible = result.feasible
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.where(optimum > 0, (result.cost - optimum) / optimum, 0.0)
        rows.append((name, float(result.cost.mean()), float(feasible.mean() * 100),
                     float(gap[feasible].mean() * 100) if feasible.any() else float("nan"),
                     float(result.num_selected.mean()), per_instance_us,
                     float(result.nodes.mean())))

    print(f"P1 on {args.instances} random instances: K = {args.experts}, D = {args.max_experts}, "
          f"rho = {args.importance}, softmax gate (T = {args.gate_temperature}), "
          f"{args.cost_model} costs, seed {args.seed}")
    header = ("scheme", "mean cost", "feasible %", "gap vs DES %", "experts used",
              "time/inst (us)", "nodes")
    widths = (24, 10, 10, 12, 12, 14, 9)
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    print("  ".join("-" * w for w in widths))
    for name, mean_cost, feasible_pct, gap_pct, used, time_us, nodes in rows:
        cells = (name.ljust(widths[0]), f"{mean_cost:10.4f}", f"{feasible_pct:10.1f}",
                 f"{gap_pct:12.2f}" if np.isfinite(gap_pct) else "-".rjust(12), f"{used:12.2f}", f"{time_us:14.1f}", f"{nodes:9.1f}")
        print("  ".join(cells))
    print("gap vs DES: mean relative extra cost over the instances where the scheme's set is "
          "feasible; time: wall clock of one batched call / instances; nodes: mean search nodes "
          "(subsets for brute force, HiGHS nodes for MILP, 0 for heuristics).")
    return 0

r"""The metrics of a run: what is tallied per round, and how the tallies become a result row.

A :class:`Tally` collects one scheme's sums over the rounds of one chunk of tokens
(:meth:`Tally.add_round`), the task score of the final states as counts
(:meth:`Tally.add_counts`) and the channel statistics (:meth:`Tally.add_channel`); tallies of
several chunks add up (:meth:`Tally.merge`), and :meth:`Tally.row` divides the sums into the
columns of :data:`METRIC_COLUMNS`.

A new metric is one entry of :data:`_METRICS` (its column, meaning and value from the sums), plus
its sum in :meth:`Tally.add_round` if it needs a new one. Accuracy is carried as counts
``(correct, total)`` for every ``accuracy*`` key the model's ``evaluate`` returns, so groups
(``accuracy_<group>``) and intervals can be derived from the same counts.
"""

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dmoe.scheduler import top_d_mask

__all__ = ["METRIC_COLUMNS", "NONDETERMINISTIC_COLUMNS", "Tally", "Clock", "metrics_reference"]

#: Columns that measure wall time: they differ between two runs of the same point.
NONDETERMINISTIC_COLUMNS = ("solver_time_s", "time_phy_s", "time_moe_s", "time_scheduler_s",
                            "point_wall_time_s", "point_time_phy_s", "point_time_moe_s")

_TIMING = {
    "time_phy_s": "this scheme's wall time in dmoe.phy (transmissions)",
    "time_moe_s": "this scheme's wall time in dmoe.moe (gates, experts, quantisation)",
    "time_scheduler_s": "this scheme's wall time in its decisions",
    "point_wall_time_s": "wall time of the whole point (all schemes, channel draws)",
    "point_time_phy_s": "the point's shared wall time in dmoe.phy (channel draws, planning "
                        "rates)",
    "point_time_moe_s": "the point's shared wall time in dmoe.moe (embedding)",
}


@dataclass(frozen=True)
class _Metric:
    description: str
    value: Callable  # value(tally, per) -> float


def _mean_or_nan(values):
    return float(np.mean(values)) if not np.all(np.isnan(values)) else math.nan


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator else float("nan")


# One entry per metric column, in row order. `per(sum, "token")` divides a sum by the tokens,
# `per(sum, "token_layer")` by tokens x layers.
_METRICS = {
    "accuracy": _Metric(
        "task accuracy of the MoE under the scheme's decisions and the PHY",
        lambda t, per: t.accuracy("accuracy")),
    "experts_per_token": _Metric(
        "experts selected per token and layer (mean)",
        lambda t, per: per("experts", "token_layer")),
    "energy_per_token_j": _Metric(
        "realised energy per token, all layers (dispatch + return + compute)",
        lambda t, per: (per("energy_dispatch", "token") + per("energy_return", "token")
                        + per("energy_compute", "token"))),
    "energy_dispatch_j": _Metric(
        "realised dispatch energy per token",
        lambda t, per: per("energy_dispatch", "token")),
    "energy_return_j": _Metric(
        "realised return energy per token",
        lambda t, per: per("energy_return", "token")),
    "energy_compute_j": _Metric(
        "compute energy per token",
        lambda t, per: per("energy_compute", "token")),
    "planned_energy_per_token_j": _Metric(
        "planned energy per token (planning rates, CSI view)",
        lambda t, per: (per("planned_dispatch", "token") + per("planned_return", "token")
                        + t.compute_energy_j * per("experts", "token_layer") * t.num_layers)),
    "planned_energy_dispatch_j": _Metric(
        "planned dispatch energy per token",
        lambda t, per: per("planned_dispatch", "token")),
    "planned_energy_return_j": _Metric(
        "planned return energy per token",
        lambda t, per: per("planned_return", "token")),
    "latency_per_token_s": _Metric(
        "realised latency per token: sum over layers of the slowest dispatch link + compute + "
        "the slowest return link",
        lambda t, per: per("latency", "token")),
    "planned_latency_per_token_s": _Metric(
        "planned latency per token",
        lambda t, per: per("planned_latency", "token")),
    "drop_rate": _Metric(
        "fraction of selected expert links that failed after HARQ (dispatch or return): "
        "dropped with `on_failure = \"drop\"`, combined with their bit errors with "
        "`\"corrupt\"`",
        lambda t, per: _ratio(t.sums["failed_links"], t.sums["selected_links"])),
    "bler": _Metric(
        "first-attempt block error rate of the transmitted links",
        lambda t, per: _ratio(t.sums["block_errors"], t.sums["transmitted"])),
    "residual_bler": _Metric(
        "block error rate after HARQ",
        lambda t, per: _ratio(t.sums["residual_errors"], t.sums["transmitted"])),
    "ber": _Metric(
        "bit error rate of the payloads after HARQ",
        lambda t, per: _ratio(t.sums["bit_errors"], t.sums["bits"])),
    "retransmissions": _Metric(
        "HARQ retransmissions per transmitted link",
        lambda t, per: _ratio(t.sums["retransmissions"], t.sums["transmitted"])),
    "requirement_met": _Metric(
        "fraction of token-layers whose set reached gamma = rho x top-D relevance",
        lambda t, per: per("requirement_met", "token_layer")),
    "relevance_kept": _Metric(
        "selected relevance / top-D relevance (mean over token-layers)",
        lambda t, per: per("relevance_kept", "token_layer")),
    "arrived_relevance": _Metric(
        "relevance of the experts that arrived / top-D relevance",
        lambda t, per: per("arrived_relevance", "token_layer")),
    "topk_agreement": _Metric(
        "fraction of token-layers whose set equals the top-D set",
        lambda t, per: per("agreement", "token_layer")),
    "topk_jaccard": _Metric(
        "mean Jaccard similarity of the set with the top-D set",
        lambda t, per: per("jaccard", "token_layer")),
    "nodes": _Metric(
        "branch-and-bound nodes per token-layer (des); NaN for schemes that do not search",
        lambda t, per: _mean_or_nan(np.concatenate(t.nodes))),
    "iterations": _Metric(
        "JESA rounds per token-layer (jesa); NaN otherwise",
        lambda t, per: _mean_or_nan(np.concatenate(t.iterations))),
    "solver_time_s": _Metric(
        "decision wall time per token-layer (selection + subcarrier assignment)",
        lambda t, per: per("solver_time", "token_layer")),
    "mean_snr_db": _Metric(
        "mean true dispatch SNR over tokens, layers, links and subcarriers (dB)",
        lambda t, per: t.sums["snr_db"] / t.sums["snr_count"]),
}

#: Metric columns of every row, with their meaning (``docs/cosim.md``, "Metrics").
METRIC_COLUMNS = {name: metric.description for name, metric in _METRICS.items()}

_SUMS = ("experts", "energy_dispatch", "energy_return", "energy_compute", "planned_dispatch",
         "planned_return", "latency", "planned_latency", "selected_links", "failed_links",
         "transmitted", "block_errors", "residual_errors", "bit_errors", "bits",
         "retransmissions", "requirement_met", "relevance_kept", "arrived_relevance",
         "agreement", "jaccard", "solver_time", "snr_db", "snr_count")


def metrics_reference():
    """The metric columns as a Markdown table (generated into ``docs/cosim.md``)."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {text} |" for name, text in METRIC_COLUMNS.items()]
    lines += [f"| `{name}` | {_TIMING[name]}; differs between runs, so it is left out when "
              "tables are compared |" for name in NONDETERMINISTIC_COLUMNS
              if name not in METRIC_COLUMNS]
    return "\n".join(lines) + "\n"


class Clock:
    """Wall time spent in phy / moe / scheduler (benchmarks read it from the rows)."""

    def __init__(self):
        self.seconds = {"phy": 0.0, "moe": 0.0, "scheduler": 0.0}

    @contextlib.contextmanager
    def __call__(self, part):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - start


class Tally:
    r"""One scheme's sums over the rounds of a batch of tokens, and the row they make.

    Parameters
    ----------
    num_layers : int
        L, rounds per token.
    max_experts : int
        D of the point (the top-D reference of the relevance metrics).
    compute_energy_j, compute_time_s : float
        Per expert evaluation and token.

    Attributes
    ----------
    sums : dict of str -> float
    counts : dict of str -> [correct, total]
        Task scores (``accuracy`` and any ``accuracy_<group>``).
    nodes, iterations : list of [T] float64 arrays
    seconds : dict of str -> float
        Wall time in ``phy``, ``moe``, ``scheduler``.
    num_tokens : int
    """

    def __init__(self, num_layers, max_experts, compute_energy_j, compute_time_s):
        self.num_layers = num_layers
        self.max_experts = max_experts
        self.compute_energy_j = compute_energy_j
        self.compute_time_s = compute_time_s
        self.sums = {name: 0.0 for name in _SUMS}
        self.counts = {}
        self.nodes, self.iterations = [], []
        self.seconds = {"phy": 0.0, "moe": 0.0, "scheduler": 0.0}
        self.num_tokens = 0

    def add_channel(self, snr_db):
        """The true dispatch SNRs of the batch in dB (any shape)."""
        self.sums["snr_db"] += float(snr_db.sum())
        self.sums["snr_count"] += snr_db.size

    def add_round(self, outcome, gamma):
        """The sums of one round (a :class:`~dmoe.cosim.rounds.RoundOutcome`).

        ``gamma`` [T] float64 is the relevance each token's set had to reach.
        """
        sums = self.sums
        decision, relevance = outcome.decision, outcome.relevance
        dispatch, back = outcome.dispatch, outcome.returned
        selected, arrived = decision.selected, outcome.arrived
        planned_d, planned_u = outcome.planned_dispatch, outcome.planned_return
        self.nodes.append(decision.nodes)
        self.iterations.append(decision.iterations)
        sums["solver_time"] += decision.solver_time_s

        computed = outcome.computed
        sums["experts"] += selected.sum()
        sums["energy_dispatch"] += dispatch.energy_j.sum()
        sums["energy_return"] += back.energy_j.sum()
        sums["energy_compute"] += (self.compute_energy_j * computed.sum(axis=-1)).sum()
        sums["planned_dispatch"] += planned_d[0].sum()
        sums["planned_return"] += planned_u[0].sum()
        compute_time = self.compute_time_s * computed.any(axis=-1)
        sums["latency"] += (dispatch.airtime_s.max(axis=-1) + compute_time
                            + back.airtime_s.max(axis=-1)).sum()
        sums["planned_latency"] += (planned_d[1].max(axis=-1) + self.compute_time_s
                                    * selected.any(axis=-1) + planned_u[1].max(axis=-1)).sum()
        link_ok = dispatch.delivered & back.delivered
        sums["selected_links"] += selected.sum()
        sums["failed_links"] += (selected & ~link_ok).sum()
        sent_d, sent_u = decision.dispatch.any(axis=-1), outcome.return_mask.any(axis=-1)
        for sent, phase in ((sent_d, dispatch), (sent_u, back)):
            sums["transmitted"] += sent.sum()
            sums["block_errors"] += (phase.block_error * sent).sum()
            sums["residual_errors"] += (sent & ~phase.delivered).sum()
            sums["bit_errors"] += (phase.bit_errors * sent).sum()
            sums["bits"] += outcome.payload_bits * sent.sum()
            sums["retransmissions"] += (phase.retransmissions * sent).sum()
        topd = top_d_mask(relevance, min(self.max_experts, relevance.shape[-1]))
        top_mass = np.where(topd, relevance, 0.0).sum(axis=-1)
        kept = np.where(selected, relevance, 0.0).sum(axis=-1)
        sums["requirement_met"] += (kept >= gamma * (1 - 1e-9)).sum()
        sums["relevance_kept"] += (kept / top_mass).sum()
        sums["arrived_relevance"] += (np.where(arrived, relevance, 0.0).sum(axis=-1)
                                      / top_mass).sum()
        sums["agreement"] += np.all(selected == topd, axis=-1).sum()
        union = (selected | topd).sum(axis=-1)
        sums["jaccard"] += ((selected & topd).sum(axis=-1) / np.maximum(union, 1)).sum()

    def add_counts(self, counts, num_tokens):
        """The task scores of the batch's final states (``model.evaluate``) and its size."""
        for name, (correct, total) in counts.items():
            before = self.counts.get(name, (0, 0))
            self.counts[name] = (before[0] + correct, before[1] + total)
        self.num_tokens += num_tokens

    def add_seconds(self, seconds):
        """Wall time of this scheme, ``{"phy", "moe", "scheduler": s}``."""
        for part, value in seconds.items():
            self.seconds[part] += value

    def accuracy(self, name="accuracy"):
        """``correct / total`` of the counts ``name`` (NaN without any)."""
        correct, total = self.counts.get(name, (0, 0))
        return correct / total if total else math.nan

    @classmethod
    def merge(cls, tallies):
        """The tally of all tokens of several batches (chunks), in their order."""
        first = tallies[0]
        out = cls(first.num_layers, first.max_experts, first.compute_energy_j,
                  first.compute_time_s)
        for tally in tallies:
            for name, value in tally.sums.items():
                out.sums[name] += value
            out.add_counts(tally.counts, tally.num_tokens)
            out.nodes += tally.nodes
            out.iterations += tally.iterations
            out.add_seconds(tally.seconds)
        return out

    def row(self, scheme):
        """The metrics row: ``scheme``, :data:`METRIC_COLUMNS`, any ``accuracy_<group>`` and
        this scheme's wall times (``time_phy_s``, ``time_moe_s``, ``time_scheduler_s``)."""
        divisors = {"token": self.num_tokens, "token_layer": self.num_tokens * self.num_layers}

        def per(name, over):
            return self.sums[name] / divisors[over]

        row = {"scheme": scheme}
        for name, metric in _METRICS.items():
            row[name] = metric.value(self, per)
        for name in self.counts:
            if name != "accuracy":
                row[name] = self.accuracy(name)
        for part in ("phy", "moe", "scheduler"):
            row[f"time_{part}_s"] = self.seconds[part]
        return {key: (float(value) if isinstance(value, (np.floating, np.integer)) else value)
                for key, value in row.items()}

r"""The protocol engine: one sweep point, every scheme, every MoE layer, batch first.

For a point, ``run_point`` draws one batch of tokens (test samples) and one set of channels
(``num_rounds = L``: round l is MoE layer l, so the Doppler of ``channel.speed_mps`` changes the
channel from layer to layer), then runs every scheme on those same tokens and channels. Per
layer (``docs/cosim.md``, "One round"):

1. relevance ``g = model.relevance(l, h)``                                   [T, K]
2. planning rates from the scheduler's CSI view, ``links.rate(view="csi")``  [T, K, N] per phase
3. decision of the scheme (``dmoe.cosim.schemes.decide``)
4. dispatch of ``model.to_bits(h)`` with ``LinkSimulator.transmit``           [T, 1, K, bits]
5. ``model.expert_outputs`` on what each node received                       [T, K, width]
6. return of the quantised outputs over the return links
7. ``model.combine`` over the experts whose returns arrived (``phy.on_failure = "drop"``), or
   over every selected expert with its bit errors applied (``"corrupt"``)

No Python loop runs over tokens; the loops are over chunks of tokens (``[execution]
chunk_size``, each chunk simulated whole, with its own channel draw), schemes, layers and phases.
The execution mode and precision of ``[execution]`` go to ``dmoe.phy`` (channel draw, bit-true
links) and to the MoE (``model.execution``), see ``docs/scaling.md``.
"""

import contextlib
import dataclasses
import json
import math
import time
from functools import lru_cache

import numpy as np

from .config import StudyConfig
from .schemes import decide, link_energy_airtime
from .study import derive_seed

__all__ = ["run_point", "NONDETERMINISTIC_COLUMNS", "METRIC_COLUMNS", "run_metadata",
           "check_point", "point_key", "config_columns", "load_model", "metrics_reference",
           "execution_settings"]

#: Columns that measure wall time: they differ between two runs of the same point.
NONDETERMINISTIC_COLUMNS = ("solver_time_s", "time_phy_s", "time_moe_s", "time_scheduler_s",
                            "point_wall_time_s", "point_time_phy_s", "point_time_moe_s")

#: Metric columns of every row, with their meaning (``docs/cosim.md``, "Metrics").
METRIC_COLUMNS = {
    "accuracy": "task accuracy of the MoE under the scheme's decisions and the PHY",
    "experts_per_token": "experts selected per token and layer (mean)",
    "energy_per_token_j": "realised energy per token, all layers (dispatch + return + compute)",
    "energy_dispatch_j": "realised dispatch energy per token",
    "energy_return_j": "realised return energy per token",
    "energy_compute_j": "compute energy per token",
    "planned_energy_per_token_j": "planned energy per token (planning rates, CSI view)",
    "planned_energy_dispatch_j": "planned dispatch energy per token",
    "planned_energy_return_j": "planned return energy per token",
    "latency_per_token_s": "realised latency per token: sum over layers of the slowest dispatch "
                           "link + compute + the slowest return link",
    "planned_latency_per_token_s": "planned latency per token",
    "drop_rate": "fraction of selected expert links that failed after HARQ (dispatch or "
                 "return): dropped with `on_failure = \"drop\"`, combined with their bit errors "
                 "with `\"corrupt\"`",
    "bler": "first-attempt block error rate of the transmitted links",
    "residual_bler": "block error rate after HARQ",
    "ber": "bit error rate of the payloads after HARQ",
    "retransmissions": "HARQ retransmissions per transmitted link",
    "requirement_met": "fraction of token-layers whose set reached gamma = rho x top-D relevance",
    "relevance_kept": "selected relevance / top-D relevance (mean over token-layers)",
    "arrived_relevance": "relevance of the experts that arrived / top-D relevance",
    "topk_agreement": "fraction of token-layers whose set equals the top-D set",
    "topk_jaccard": "mean Jaccard similarity of the set with the top-D set",
    "nodes": "branch-and-bound nodes per token-layer (des); NaN for schemes that do not search",
    "iterations": "JESA rounds per token-layer (jesa); NaN otherwise",
    "solver_time_s": "decision wall time per token-layer (selection + subcarrier assignment)",
    "mean_snr_db": "mean true dispatch SNR over tokens, layers, links and subcarriers (dB)",
}

def metrics_reference():
    """The metric columns as a Markdown table (generated into ``docs/cosim.md``)."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {text} |" for name, text in METRIC_COLUMNS.items()]
    timing = {"time_phy_s": "this scheme's wall time in dmoe.phy (transmissions)",
              "time_moe_s": "this scheme's wall time in dmoe.moe (gates, experts, quantisation)",
              "time_scheduler_s": "this scheme's wall time in its decisions",
              "point_wall_time_s": "wall time of the whole point (all schemes, channel draws)",
              "point_time_phy_s": "the point's shared wall time in dmoe.phy (channel draws, "
                                  "planning rates)",
              "point_time_moe_s": "the point's shared wall time in dmoe.moe (embedding)"}
    lines += [f"| `{name}` | {timing[name]}; differs between runs, so it is left out when "
              "tables are compared |" for name in NONDETERMINISTIC_COLUMNS
              if name not in METRIC_COLUMNS]
    return "\n".join(lines) + "\n"


# Planning rates below this spectral efficiency count as unusable: the scheduler sees a finite
# but very high cost instead of inf, so every scheme can still be realised on such a link
# (it then most likely fails on the PHY, which is what would happen).
_MIN_SPECTRAL_EFFICIENCY = 1e-3


def load_model(moe):
    """The MoE of a ``[moe]`` section (trained on first use, cached on disk and in memory).

    Parameters
    ----------
    moe : MoESection

    Output
    ------
    model : dmoe.moe.MoEModel or dmoe.moe.TraceMoE
    """
    return _load_model(moe.task, moe.cache_dir, moe.num_experts, moe.num_layers, moe.trace_path,
                       moe.trace_width)


@lru_cache(maxsize=8)
def _load_model(task, cache_dir, num_experts, num_layers, trace_path, trace_width):
    # A read-only memo (a trained model is a pure function of these settings): loading the
    # .keras file once per process, not once per point, changes no result.
    import dataclasses as dc
    from dmoe.moe import DEFAULT_CONFIGS, MoEConfig, TraceMoE, load_default_moe
    if task == "trace" and (trace_path is not None or trace_width is not None):
        fields = {"task": "trace", "trace_path": trace_path}
        if trace_width is not None:
            fields["trace_width"] = trace_width
        return TraceMoE.from_config(MoEConfig(**fields))
    if num_experts is None and num_layers is None:
        return load_default_moe(task, cache_dir=cache_dir)
    if task == "trace":
        raise ValueError("config keys 'moe.num_experts' / 'moe.num_layers' do not apply to the "
                         "trace task (its sizes come from the trace file)")
    changes = {name: value for name, value in (("num_experts", num_experts),
                                                ("num_layers", num_layers)) if value is not None}
    config = dc.replace(DEFAULT_CONFIGS[task], **changes)
    if "num_experts" in changes and config.top_k > config.num_experts:
        config = dc.replace(config, top_k=config.num_experts)
    from dmoe.moe import load_trained_moe
    return load_trained_moe(config, cache_dir=cache_dir)  # trains once, then reads the cache


def point_key(config):
    """Canonical key of a point: its resolved config as sorted compact JSON."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def config_columns(config):
    """The point's settings as flat ``{dotted key: scalar}`` columns (lists as JSON text)."""
    columns = {}

    def walk(mapping, prefix):
        for name, value in mapping.items():
            if name == "schemes":
                continue
            if isinstance(value, dict):
                walk(value, prefix + name + ".")
            elif isinstance(value, (list, tuple)):
                columns[prefix + name] = json.dumps(list(value))
            elif value is None:
                columns[prefix + name] = ""
            else:
                columns[prefix + name] = value
    walk(config.model_dump(mode="json"), "")
    return columns


def check_point(config, model):
    """Check a point against the MoE it runs on (D, k, layer-wise rho, distances).

    Raises
    ------
    ValueError
        Naming the config key and the model's L or K.
    """
    K, L = model.num_experts, model.num_layers
    if config.max_experts > K:
        raise ValueError(f"config key 'max_experts' = {config.max_experts}: must be <= K = {K} "
                         f"experts of the {config.moe.task!r} model")
    if config.top_k is not None and config.top_k > K:
        raise ValueError(f"config key 'top_k' = {config.top_k}: must be <= K = {K}")
    if config.layer_importance is not None and len(config.layer_importance) != L:
        raise ValueError(f"config key 'layer_importance' has {len(config.layer_importance)} "
                         f"values: must have one per MoE layer, L = {L}")
    if config.channel.distances_m is not None and len(config.channel.distances_m) != K:
        raise ValueError(f"config key 'channel.distances_m' has {len(config.channel.distances_m)}"
                         f" values: must have one per expert node, K = {K}")
    _channel_config(config, L)
    if config.execution.device is not None:
        from .execution import resolve_device
        try:
            resolve_device(config.execution.device)
        except ValueError as error:
            raise ValueError(f"config key 'execution.device': {error}") from None


def _channel_config(config, num_layers):
    from dmoe.phy import ChannelConfig
    fields = config.channel.model_dump()
    try:
        return ChannelConfig(**fields, num_rounds=num_layers)
    except ValueError as error:
        raise ValueError(f"config section [channel]: {error}") from None


def execution_settings(execution):
    """The :class:`~dmoe.cosim.execution.ExecutionSettings` of an ``[execution]`` section."""
    from .execution import ExecutionSettings
    return ExecutionSettings(mode=execution.mode, precision=execution.precision,
                             device=execution.device, chunk_size=execution.chunk_size)


@contextlib.contextmanager
def _execution(settings, model):
    """Run the block in the settings' mode, on their device, with the model in that mode
    (restored afterwards)."""
    from .execution import execution_scope
    before = model.execution
    model.execution = settings.mode
    try:
        with execution_scope(settings):
            yield
    finally:
        model.execution = before


def run_metadata(config=None):
    """How results are made: library versions, device, execution mode (and config, seed).

    Output
    ------
    metadata : dict, JSON-serialisable
    """
    from importlib import metadata as md
    import tensorflow as tf
    versions = {}
    for dist in ("dmoe", "tensorflow", "keras", "sionna-no-rt", "numpy", "scipy", "pydantic",
                 "pyarrow", "pandas"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    gpus = tf.config.list_logical_devices("GPU")
    out = {"versions": versions, "device": gpus[0].name if gpus else "/device:CPU:0"}
    if config is not None:
        out.update(execution_mode=config.execution.mode,
                   precision=config.execution.precision,
                   chunk_size=config.execution.chunk_size, seed=config.seed,
                   config=config.model_dump(mode="json"))
    return out


class _Clock:
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


def _one_round(links, layer):
    """The links of round ``layer`` only, as a one-round Links (arrays [T, 1, K, N])."""
    values = {}
    for item in dataclasses.fields(links):
        value = getattr(links, item.name)
        if item.name == "config":
            value = dataclasses.replace(value, num_rounds=1)
        elif isinstance(value, np.ndarray) and value.ndim == 4:
            value = value[:, layer:layer + 1]
        values[item.name] = value
    return type(links)(**values)


def _topd_mask(relevance, d):
    order = np.argsort(-relevance, axis=-1, kind="stable")[:, :d]
    mask = np.zeros(relevance.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask


def _transmit(sim, links_round, mask, payload_bits, payload, seed, direction, planned):
    """Realise one phase for every link: delivered, energy, airtime, errors ([T, K] each)."""
    num_tokens, num_experts = mask.shape[:2]
    used = mask.any(axis=-1)
    if sim is None:  # fidelity = "ideal": everything arrives as planned
        energy, airtime = planned
        zeros = np.zeros((num_tokens, num_experts))
        return {"delivered": used, "energy": energy, "airtime": airtime, "block_error": zeros,
                "bit_errors": zeros, "retransmissions": zeros, "received": payload}
    out = sim.transmit(links_round, payload_bits=int(payload_bits), subcarriers=mask[:, None],
                       mcs=None, direction=direction,
                       payload=None if payload is None else payload[:, None], seed=int(seed))
    received = getattr(out, "received", None)
    return {
        "delivered": np.asarray(out.delivered)[:, 0] & used,
        "energy": np.asarray(out.energy_j, dtype=np.float64)[:, 0],
        "airtime": np.asarray(out.airtime_s, dtype=np.float64)[:, 0],
        "block_error": np.asarray(out.block_error, dtype=np.float64)[:, 0],
        "bit_errors": np.asarray(out.bit_errors, dtype=np.float64)[:, 0],
        "retransmissions": np.asarray(out.retransmissions, dtype=np.float64)[:, 0],
        "received": None if received is None or payload is None else np.asarray(received)[:, 0],
    }


def _expert_outputs(model, layer, hidden_sent, received_bits, bits_per_value, errors):
    """Each node's output on what it received: [T, K, width].

    ``hidden_sent`` [T, width] is the quantised state every node gets intact; rows of
    ``received_bits`` [T, K, bits] with ``errors`` [T, K] > 0 are decoded and recomputed.
    """
    outputs = model.expert_outputs(layer, hidden_sent)
    if received_bits is None or not np.any(errors > 0):
        return outputs
    token, expert = np.nonzero(errors > 0)
    corrupted = model.from_bits(received_bits[token, expert], bits_per_value)
    outputs = outputs.copy()
    outputs[token, expert] = model.expert_outputs(layer, corrupted)[np.arange(len(token)), expert]
    return outputs


def run_point(config):
    r"""Run every scheme of one sweep point.

    Parameters
    ----------
    config : StudyConfig or dict
        One point (no lists on scalar fields). Everything random derives from
        ``config.seed`` and the config itself, so the rows depend on nothing else: the same
        config gives the same rows in any process, on any executor. ``[execution]
        chunk_size`` splits the tokens into chunks that are simulated one after the other,
        each with its own random streams (derived from the point's and the chunk's position):
        the rows then depend on the chunk size used, which every row records.

    Output
    ------
    rows : list of dict
        One row per scheme: ``scheme``, the point's settings (:func:`config_columns`), the
        metrics of :data:`METRIC_COLUMNS`, ``point_seed``, how it was computed
        (``execution_mode``, ``precision``, ``device``, ``chunk_size`` = tokens per chunk
        actually used, ``num_chunks``, ``chunk_halvings`` = out-of-memory halvings) and the
        wall times of :data:`NONDETERMINISTIC_COLUMNS`.

    Example
    -------
    >>> rows = run_point({"num_tokens": 32, "schemes": ["des", "top_k"]})   # doctest: +SKIP
    >>> [(r["scheme"], r["accuracy"]) for r in rows]                       # doctest: +SKIP
    """
    if not isinstance(config, StudyConfig):
        config = StudyConfig.model_validate(config)
    started = time.perf_counter()
    key = point_key(config)
    point_seed = derive_seed(config.seed, key)
    settings = execution_settings(config.execution)
    # Memory growth on before the model load can initialise the GPUs; an unknown device is
    # reported before any work (ValueError naming the devices this process has).
    from .execution import configure_device
    try:
        device = configure_device(settings)
    except ValueError as error:
        raise ValueError(f"config key 'execution.device': {error}") from None
    model = load_model(config.moe)
    check_point(config, model)
    with _execution(settings, model):
        rows, chunks = _run(config, model, settings)
    wall = time.perf_counter() - started
    columns = config_columns(config)
    for row in rows:
        row.update(columns)
        row.update(settings.record(device=device, chunk_size_used=chunks.chunk_size))
        row.update(point_seed=point_seed, num_chunks=chunks.num_chunks,
                   chunk_halvings=chunks.halvings, point_wall_time_s=wall)
    return rows


def _chunk_seed(seed, start, stop, num_tokens):
    """A chunk's seed: the point's own for the whole batch, else derived from the chunk."""
    if (start, stop) == (0, num_tokens):
        return seed
    return derive_seed(seed, "chunk", start, stop)


def _run(config, model, settings):
    """Every scheme on every chunk of tokens; the rows and the :class:`ChunkedResult`."""
    from dmoe.phy import LinkSimulator
    from .execution import run_chunked

    num_tokens = config.num_tokens
    num_layers = model.num_layers
    # The model's identity, not where it is cached or how its payloads are quantised.
    moe_key = config.moe.model_dump(mode="json", exclude={"cache_dir", "bits_per_value"})
    bits_per_value = config.moe.bits_per_value

    # Same tokens for every point of a study with this MoE; same channels for every point that
    # shares the channel settings (common random numbers across rho and schemes).
    x_test, y_test = model.test_data()
    token_rng = np.random.default_rng(derive_seed(config.seed, "tokens", moe_key, num_tokens))
    index = token_rng.choice(len(y_test), size=num_tokens, replace=num_tokens > len(y_test))
    x, y = x_test[index], np.asarray(y_test)[index]

    channel_cfg = _channel_config(config, num_layers)
    # The draw depends on what shapes geometry and fading only: points that differ in transmit
    # power, noise or CSI quality see the same channels (common random numbers); the LS noise
    # is drawn after the channel. Outdated CSI draws extra earlier rounds, so its delay counts.
    channel_key = config.channel.model_dump(mode="json", exclude={
        "tx_power_dbm", "noise_figure_db", "noise_psd_dbm_hz", "csi", "csi_pilot_snr_gain_db",
        "csi_delay_rounds"})
    if config.channel.csi == "outdated":
        channel_key["csi_delay_rounds"] = config.channel.csi_delay_rounds
    phy = config.phy
    seeds = {
        "channel": derive_seed(config.seed, "channel", channel_key, moe_key, num_tokens),
        # Drop and corrupt see the same link outcomes (on_failure only changes what is done
        # with a failed block); power and CSI enter the outcomes through the SNRs, not the seed.
        "link": derive_seed(config.seed, "link", channel_key, moe_key, num_tokens,
                            phy.model_dump(mode="json", exclude={"on_failure"}), bits_per_value),
    }
    decision_key = config.model_dump(mode="json", exclude={"phy", "execution", "schemes"})
    decision_key["moe"].pop("cache_dir")
    for scheme in config.schemes:
        # The scheme's own randomness depends on the decision inputs only (not on the PHY
        # fidelity or execution mode), so e.g. `random` picks the same sets in every fidelity.
        seeds[scheme] = derive_seed(config.seed, "scheme", scheme, decision_key)

    sim = None
    if phy.fidelity != "ideal":
        round_cfg = dataclasses.replace(channel_cfg, num_rounds=1)
        sim = LinkSimulator(round_cfg, fidelity=phy.fidelity,
                            max_retransmissions=phy.max_retransmissions,
                            bler_target=phy.bler_target, mcs_table=phy.mcs_table,
                            execution=settings.mode, precision=settings.precision)
    context = dict(config=config, model=model, settings=settings, channel_cfg=channel_cfg,
                   sim=sim, x=x, y=y, seeds=seeds)

    def simulate(positions):
        return _simulate_chunk(int(positions[0]), int(positions[-1]) + 1, **context)

    chunks = run_chunked(simulate, np.arange(num_tokens), chunk_size=settings.chunk_size,
                         combine=_combine_chunks, restart=True)
    totals = chunks.output
    trace = getattr(model, "kind", "keras") == "trace"
    rows = []
    for scheme in config.schemes:
        row = _scheme_row(scheme, totals["schemes"][scheme], config, num_tokens, num_layers,
                          trace)
        row.update(mean_snr_db=totals["snr_db_sum"] / totals["snr_count"],
                   point_time_phy_s=totals["seconds"]["phy"],
                   point_time_moe_s=totals["seconds"]["moe"])
        rows.append(row)
    return rows, chunks


def _combine_chunks(parts):
    """Sum the chunks' tallies (arrays of per-token-layer values are concatenated)."""
    def merge(values):
        first = values[0]
        if isinstance(first, dict):
            return {key: merge([value[key] for value in values]) for key in first}
        if isinstance(first, np.ndarray):
            return np.concatenate(values)
        return sum(values)
    return merge(parts)


def _simulate_chunk(start, stop, config, model, settings, channel_cfg, sim, x, y, seeds):
    """Tokens ``start:stop`` of the point through every scheme: the tallies of each scheme."""
    from dmoe.phy import sample_links

    clock = _Clock()
    num_tokens = config.num_tokens
    num_layers, num_experts = model.num_layers, model.num_experts
    seed = {name: _chunk_seed(value, start, stop, num_tokens) for name, value in seeds.items()}
    with clock("phy"):
        links = sample_links(channel_cfg, batch_size=stop - start, num_links=num_experts,
                             seed=seed["channel"], execution=settings.mode,
                             precision=settings.precision)
    phy = config.phy
    rate_kwargs = dict(model=phy.planning_rate, view="csi")
    if phy.planning_rate == "mcs":
        rate_kwargs.update(bler_target=phy.bler_target, mcs_table=phy.mcs_table)
    floor = _MIN_SPECTRAL_EFFICIENCY * channel_cfg.subcarrier_spacing_hz
    with clock("phy"):
        rate_d = np.maximum(links.rate(direction="dispatch", **rate_kwargs), floor)
        rate_u = np.maximum(links.rate(direction="return", **rate_kwargs), floor)
    snr = np.asarray(links.snr_dispatch, dtype=np.float64)
    snr_db = 10 * np.log10(np.maximum(snr, 1e-30))
    round_links = [_one_round(links, layer) for layer in range(num_layers)]
    with clock("moe"):
        hidden0 = model.embed(x[start:stop])
    tallies = {"snr_db_sum": float(snr_db.sum()), "snr_count": snr_db.size,
               "seconds": dict(clock.seconds), "schemes": {}}
    for scheme in config.schemes:
        tallies["schemes"][scheme] = _run_scheme(
            scheme, config, model, clock, hidden0, y[start:stop], round_links, rate_d, rate_u,
            channel_cfg.subcarrier_power_w, sim, seed["link"],
            np.random.default_rng(seed[scheme]), config.moe.bits_per_value)
    return tallies


def _run_scheme(scheme, config, model, clock, hidden, labels, round_links, rate_d, rate_u,
                power_w, sim, link_seed, rng, bits_per_value):
    """One scheme on one chunk of tokens: sums over its tokens (see :func:`_scheme_row`)."""
    from dmoe.scheduler import JointProblem

    num_tokens, num_layers, num_experts = len(labels), model.num_layers, model.num_experts
    trace = getattr(model, "kind", "keras") == "trace"
    # A gate trace has no activations to corrupt: its failures are always drops (docs/cosim.md).
    corrupt = config.phy.on_failure == "corrupt" and not trace
    seconds_before = dict(clock.seconds)
    d = min(config.max_experts, num_experts)
    sums = {name: 0.0 for name in (
        "experts", "energy_dispatch", "energy_return", "energy_compute", "planned_dispatch",
        "planned_return", "latency", "planned_latency", "selected_links", "failed_links",
        "transmitted", "block_errors", "residual_errors", "bit_errors", "bits",
        "retransmissions", "requirement_met", "relevance_kept", "arrived_relevance",
        "agreement", "jaccard", "solver_time", "trace_mass", "correct")}
    nodes, iterations = [], []
    for layer in range(num_layers):
        with clock("moe"):
            relevance = model.relevance(layer, hidden).astype(np.float64)
            payload_bits = model.payload_bits(layer, bits_per_value)
        rho = config.importance
        if scheme.endswith("_layerwise"):
            rho = config.layer_importance[layer]
        problem = JointProblem(
            relevance=relevance, rate_dispatch=rate_d[:, layer], payload_bits_dispatch=payload_bits,
            rate_return=rate_u[:, layer], payload_bits_return=payload_bits,
            subcarrier_power_w=power_w, max_experts=d, importance=rho,
            compute_energy_j=config.compute_energy_j)
        with clock("scheduler"):
            decision = decide(scheme, problem, top_k=config.top_k,
                              weighted_sum_lambda=config.weighted_sum_lambda,
                              compute_time_s=config.compute_time_s, rng=rng)
        selected = decision.selected
        nodes.append(decision.nodes)
        iterations.append(decision.iterations)
        sums["solver_time"] += decision.solver_time_s

        planned_d = link_energy_airtime(rate_d[:, layer], decision.dispatch, payload_bits, power_w)
        planned_u = link_energy_airtime(rate_u[:, layer], decision.returned, payload_bits, power_w)

        # Dispatch: every node gets the quantised hidden state (with bit errors if corrupted).
        # A gate trace has no activations: only payload sizes travel, failures are drops.
        payload = out_bits = None
        if not trace:
            with clock("moe"):
                sent_bits = model.to_bits(hidden, bits_per_value)             # [T, bits]
                hidden_sent = model.from_bits(sent_bits, bits_per_value)
            if corrupt and sim is not None:
                payload = np.ascontiguousarray(np.broadcast_to(
                    sent_bits[:, None, :], (num_tokens, num_experts, sent_bits.shape[1])))
        with clock("phy"):
            dispatch = _transmit(sim, round_links[layer], decision.dispatch, payload_bits,
                                 payload, derive_seed(link_seed, layer, "dispatch"), "dispatch",
                                 planned_d)
        reached_node = dispatch["delivered"] | (corrupt & selected)
        if not trace:
            with clock("moe"):
                outputs = _expert_outputs(model, layer, hidden_sent, dispatch["received"],
                                          bits_per_value, dispatch["bit_errors"] * selected)
                out_bits = model.to_bits(outputs, bits_per_value)            # [T, K, bits]
                outputs_sent = model.from_bits(out_bits, bits_per_value)

        # Return: only nodes that got (something of) the token compute and answer.
        return_mask = decision.returned & reached_node[..., None]
        with clock("phy"):
            back = _transmit(sim, round_links[layer], return_mask, payload_bits,
                             out_bits if (corrupt and sim is not None) else None,
                             derive_seed(link_seed, layer, "return"), "return",
                             link_energy_airtime(rate_u[:, layer], return_mask, payload_bits,
                                                 power_w))
        if trace:
            arrived = selected & dispatch["delivered"] & back["delivered"]
            sums["trace_mass"] += np.where(arrived, relevance, 0.0).sum()
        elif corrupt:
            arrived = selected & reached_node & return_mask.any(axis=-1)
            received = outputs_sent
            if back["received"] is not None:
                received = model.from_bits(back["received"], bits_per_value)
                received = np.where((back["bit_errors"] > 0)[..., None], received, outputs_sent)
        else:
            arrived = selected & dispatch["delivered"] & back["delivered"]
            received = outputs_sent
        if not trace:
            with clock("moe"):
                hidden = model.combine(layer, hidden, received, arrived)

        # ---- metrics of this layer (sums over tokens; divided at the end)
        computed = selected & reached_node
        energy_compute = config.compute_energy_j * computed.sum(axis=-1)
        sums["experts"] += selected.sum()
        sums["energy_dispatch"] += dispatch["energy"].sum()
        sums["energy_return"] += back["energy"].sum()
        sums["energy_compute"] += energy_compute.sum()
        sums["planned_dispatch"] += planned_d[0].sum()
        sums["planned_return"] += planned_u[0].sum()
        compute_time = config.compute_time_s * computed.any(axis=-1)
        sums["latency"] += (dispatch["airtime"].max(axis=-1) + compute_time
                            + back["airtime"].max(axis=-1)).sum()
        sums["planned_latency"] += (planned_d[1].max(axis=-1) + config.compute_time_s
                                    * selected.any(axis=-1) + planned_u[1].max(axis=-1)).sum()
        link_ok = dispatch["delivered"] & back["delivered"]
        sums["selected_links"] += selected.sum()
        sums["failed_links"] += (selected & ~link_ok).sum()
        sent_d, sent_u = decision.dispatch.any(axis=-1), return_mask.any(axis=-1)
        for sent, phase in ((sent_d, dispatch), (sent_u, back)):
            sums["transmitted"] += sent.sum()
            sums["block_errors"] += (phase["block_error"] * sent).sum()
            sums["residual_errors"] += (sent & ~phase["delivered"]).sum()
            sums["bit_errors"] += (phase["bit_errors"] * sent).sum()
            sums["bits"] += payload_bits * sent.sum()
            sums["retransmissions"] += (phase["retransmissions"] * sent).sum()
        topd = _topd_mask(relevance, d)
        top_mass = np.where(topd, relevance, 0.0).sum(axis=-1)
        kept = np.where(selected, relevance, 0.0).sum(axis=-1)
        sums["requirement_met"] += (kept >= problem.gamma * (1 - 1e-9)).sum()
        sums["relevance_kept"] += (kept / top_mass).sum()
        sums["arrived_relevance"] += (np.where(arrived, relevance, 0.0).sum(axis=-1)
                                      / top_mass).sum()
        sums["agreement"] += np.all(selected == topd, axis=-1).sum()
        union = (selected | topd).sum(axis=-1)
        sums["jaccard"] += ((selected & topd).sum(axis=-1) / np.maximum(union, 1)).sum()

    if not trace:
        with clock("moe"):
            predictions = np.argmax(model.head(hidden), axis=-1)
        sums["correct"] = float(np.sum(predictions == labels))
    return {"sums": sums, "nodes": np.concatenate(nodes),
            "iterations": np.concatenate(iterations),
            "seconds": {part: clock.seconds[part] - seconds_before[part]
                        for part in ("phy", "moe", "scheduler")}}


def _scheme_row(scheme, tally, config, num_tokens, num_layers, trace):
    """The metrics row of one scheme from its tallies over all chunks."""
    sums, nodes, iterations = tally["sums"], tally["nodes"], tally["iterations"]
    token_layers = num_tokens * num_layers
    if trace:  # accuracy of a gate trace: the relevance mass that arrived (docs/cosim.md)
        accuracy = sums["trace_mass"] / token_layers
    else:
        accuracy = sums["correct"] / num_tokens

    def ratio(numerator, denominator):
        return float(numerator / denominator) if denominator else float("nan")

    row = {
        "scheme": scheme,
        "accuracy": accuracy,
        "experts_per_token": sums["experts"] / token_layers,
        "energy_dispatch_j": sums["energy_dispatch"] / num_tokens,
        "energy_return_j": sums["energy_return"] / num_tokens,
        "energy_compute_j": sums["energy_compute"] / num_tokens,
        "planned_energy_dispatch_j": sums["planned_dispatch"] / num_tokens,
        "planned_energy_return_j": sums["planned_return"] / num_tokens,
        "latency_per_token_s": sums["latency"] / num_tokens,
        "planned_latency_per_token_s": sums["planned_latency"] / num_tokens,
        "drop_rate": ratio(sums["failed_links"], sums["selected_links"]),
        "bler": ratio(sums["block_errors"], sums["transmitted"]),
        "residual_bler": ratio(sums["residual_errors"], sums["transmitted"]),
        "ber": ratio(sums["bit_errors"], sums["bits"]),
        "retransmissions": ratio(sums["retransmissions"], sums["transmitted"]),
        "requirement_met": sums["requirement_met"] / token_layers,
        "relevance_kept": sums["relevance_kept"] / token_layers,
        "arrived_relevance": sums["arrived_relevance"] / token_layers,
        "topk_agreement": sums["agreement"] / token_layers,
        "topk_jaccard": sums["jaccard"] / token_layers,
        "nodes": float(np.mean(nodes)) if not np.all(np.isnan(nodes)) else math.nan,
        "iterations": float(np.mean(iterations)) if not np.all(np.isnan(iterations)) else math.nan,
        "solver_time_s": sums["solver_time"] / token_layers,
    }
    row["energy_per_token_j"] = (row["energy_dispatch_j"] + row["energy_return_j"]
                                 + row["energy_compute_j"])
    row["planned_energy_per_token_j"] = (row["planned_energy_dispatch_j"]
                                         + row["planned_energy_return_j"]
                                         + config.compute_energy_j * row["experts_per_token"]
                                         * num_layers)
    for part in ("phy", "moe", "scheduler"):
        row[f"time_{part}_s"] = tally["seconds"][part]
    return {key: (float(value) if isinstance(value, (np.floating, np.integer)) else value)
            for key, value in row.items()}

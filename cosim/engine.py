r"""The engine: one sweep point, every scheme, every MoE layer, batch first.

For a point, :func:`run_point` draws one batch of tokens (test examples) and one set of
channels (one round per MoE layer, so the Doppler of ``channel.speed_mps`` changes the channel
from layer to layer), then runs every scheme on those same tokens and channels
(:mod:`~dmoe.cosim.seeding`). Per layer:

1. ``model.route``: the routed tokens and their relevance                      [T, K]
2. planning rates from the scheduler's CSI view, ``links.rate(view="csi")``    [T, K, N]
3. the scheme's decision (:func:`~dmoe.cosim.schemes.decide`)
4. the round itself: dispatch, experts, return, combine (:func:`~dmoe.cosim.rounds.play_round`)
5. its metrics (:class:`~dmoe.cosim.metrics.Tally`)

No Python loop runs over tokens; the loops are over chunks of tokens (``[execution]
chunk_size``), schemes, layers and phases.
"""

import dataclasses
import json
import time

import numpy as np

from dmoe.scheduler import JointProblem

from .config import config_columns, point_key
from .execution import configure_device, execution_settings, model_execution, run_chunked
from .metrics import Clock, Tally
from .models import (air_payload, channel_config, check_model, check_point,
                     layer_importance, load_model)
from .rounds import one_round, play_round
from .schemes import decide, get_scheme
from .seeding import chunk_seeds, derive_seed, draw_examples, point_seeds
from .study import validate_config

__all__ = ["run_point"]

# Planning rates below this spectral efficiency count as unusable: the scheduler sees a finite
# but very high cost instead of inf, so every scheme can still be realised on such a link
# (it then most likely fails on the PHY, which is what would happen).
_MIN_SPECTRAL_EFFICIENCY = 1e-3


def run_point(config, model=None):
    r"""Run every scheme of one sweep point.

    Parameters
    ----------
    config : StudyConfig or dict
        One point (no lists on scalar fields). Everything random derives from
        ``config.seed`` and the config itself, so the rows depend on nothing else: the same
        config gives the same rows in any process, on any executor. ``[execution]
        chunk_size`` splits the tokens into chunks that are simulated one after the other,
        each with its own random streams: the rows then depend on the chunk size used, which
        every row records.
    model : MoEProtocol or None
        The MoE to run (:class:`dmoe.moe.MoEProtocol`); None loads the one ``[moe]`` names.
        A given model's identity is not part of the seeds: ``[moe]`` still keys them.

    Output
    ------
    rows : list of dict
        One row per scheme: ``scheme``, the point's settings
        (:func:`~dmoe.cosim.config.config_columns`), the metrics of
        :data:`~dmoe.cosim.metrics.METRIC_COLUMNS`, ``point_seed``, how it was computed
        (``execution_mode``, ``precision``, ``device``, ``chunk_size`` = tokens per chunk
        actually used, ``num_chunks``, ``chunk_halvings`` = out-of-memory halvings) and the
        wall times of :data:`~dmoe.cosim.metrics.NONDETERMINISTIC_COLUMNS`.

    Example
    -------
    >>> rows = run_point({"num_tokens": 32, "schemes": ["des", "top_k"]})   # doctest: +SKIP
    >>> [(r["scheme"], r["accuracy"]) for r in rows]                       # doctest: +SKIP
    """
    config = validate_config(config)  # one-line ValueError naming the keys
    started = time.perf_counter()
    settings = execution_settings(config.execution)
    # Memory growth on before the model load can initialise the GPUs; an unknown device is
    # reported before any work (ValueError naming the devices this process has).
    try:
        device = configure_device(settings)
    except ValueError as error:
        raise ValueError(f"config key 'execution.device': {error}") from None
    model = load_model(config.moe) if model is None else check_model(model)
    check_point(config, model)
    with model_execution(settings, model):
        rho_layers = layer_importance(config, model)
        tallies, seconds, chunks = _run(config, model, settings, rho_layers)
    wall = time.perf_counter() - started
    columns = config_columns(config)
    if config.moe.air_width is None and isinstance(getattr(model, "width", None), int):
        # The width actually on the air, so a sweep against a preset has one column type.
        columns["moe.air_width"] = model.width
    rows = []
    for scheme in config.schemes:
        row = tallies[scheme].row(scheme)
        row.update(point_time_phy_s=seconds["phy"], point_time_moe_s=seconds["moe"])
        row.update(columns)
        row.update(settings.record(device=device,
                                   chunk_size_used=chunks.chunk_size * model.tokens_per_example))
        if config.layer_importance == "auto":
            # The rho_l the layer-wise schemes used (the resolved value of "auto").
            row["layer_importance_used"] = json.dumps(list(rho_layers))
        row.update(point_seed=derive_seed(config.seed, point_key(config)),
                   num_chunks=chunks.num_chunks, chunk_halvings=chunks.halvings,
                   point_wall_time_s=wall)
        rows.append(row)
    return rows


def _run(config, model, settings, rho_layers):
    """Every scheme on every chunk of examples: the merged tallies, the shared wall times and the
    :class:`~dmoe.cosim.execution.ChunkedResult` (its chunk size in examples)."""
    from dmoe.phy import LinkSimulator  # Sionna: only when a point runs

    x_test, y_test = model.test_data()
    # num_tokens counts routed tokens; a transformer routes tokens_per_example per example.
    per_example = model.tokens_per_example
    num_examples = config.num_tokens // per_example
    index = draw_examples(config, len(y_test), num_examples)
    x, y = x_test[index], np.asarray(y_test)[index]
    channel_cfg = channel_config(config, model.num_layers)
    sim = None
    if config.phy.fidelity != "ideal":
        phy = config.phy
        sim = LinkSimulator(dataclasses.replace(channel_cfg, num_rounds=1), fidelity=phy.fidelity,
                            max_retransmissions=phy.max_retransmissions,
                            bler_target=phy.bler_target, mcs_table=phy.mcs_table,
                            execution=settings.mode, precision=settings.precision)
    seeds = point_seeds(config)

    def simulate(positions):
        start, stop = int(positions[0]), int(positions[-1]) + 1
        return _simulate_chunk(config, model, settings, channel_cfg, sim, x[start:stop],
                               y[start:stop], chunk_seeds(seeds, start, stop, num_examples),
                               rho_layers)

    def combine(parts):
        return ({scheme: Tally.merge([part[0][scheme] for part in parts])
                 for scheme in config.schemes},
                {name: sum(part[1][name] for part in parts) for name in ("phy", "moe")})

    chunk_size = settings.chunk_size
    if chunk_size is not None:  # a chunk holds whole examples
        chunk_size = max(1, chunk_size // per_example)
    chunks = run_chunked(simulate, np.arange(num_examples),
                         chunk_size=chunk_size, combine=combine, restart=True)
    tallies, seconds = chunks.output
    return tallies, seconds, chunks


def _simulate_chunk(config, model, settings, channel_cfg, sim, x, y, seeds, rho_layers):
    """One chunk of examples through every scheme: ``({scheme: Tally}, shared seconds)``."""
    from dmoe.phy import sample_links  # Sionna: only when a point runs

    clock = Clock()
    num_layers = model.num_layers
    # Every routed token is one protocol instance with its own channel draw (docs/cosim.md).
    num_tokens = len(y) * model.tokens_per_example
    with clock("phy"):
        links = sample_links(channel_cfg, batch_size=num_tokens, num_links=model.num_experts,
                             seed=seeds.channel, execution=settings.mode,
                             precision=settings.precision)
    phy = config.phy
    rate_kwargs = dict(model=phy.planning_rate, view="csi")
    if phy.planning_rate == "mcs":
        rate_kwargs.update(bler_target=phy.bler_target, mcs_table=phy.mcs_table)
    floor = _MIN_SPECTRAL_EFFICIENCY * channel_cfg.subcarrier_spacing_hz
    with clock("phy"):
        rates = (np.maximum(links.rate(direction="dispatch", **rate_kwargs), floor),
                 np.maximum(links.rate(direction="return", **rate_kwargs), floor))
    snr = np.asarray(links.snr_dispatch, dtype=np.float64)
    snr_db = 10 * np.log10(np.maximum(snr, 1e-30))
    rounds = [one_round(links, layer) for layer in range(num_layers)]
    with clock("moe"):
        state = model.embed(x)
    shared = {"phy": clock.seconds["phy"], "moe": clock.seconds["moe"]}
    tallies = {}
    for scheme in config.schemes:
        tally = Tally(num_layers, min(config.max_experts, model.num_experts),
                      config.compute_energy_j, config.compute_time_s)
        tally.add_channel(snr_db)
        _run_scheme(scheme, config, model, state, y, rounds, rates, channel_cfg, sim, seeds,
                    tally, rho_layers)
        tallies[scheme] = tally
    return tallies, shared


def _run_scheme(scheme, config, model, state, y, rounds, rates, channel_cfg, sim, seeds, tally,
                rho_layers):
    """One scheme on one chunk of tokens, every layer, into ``tally``."""
    clock = Clock()
    rng = np.random.default_rng(seeds.schemes[scheme])
    layerwise = get_scheme(scheme).layerwise
    # A model without activations has nothing to corrupt: its failures are drops.
    corrupt = config.phy.on_failure == "corrupt" and model.has_activations
    bits_per_value = config.moe.bits_per_value
    power_w = channel_cfg.subcarrier_power_w
    rate_d, rate_u = rates
    for layer in range(model.num_layers):
        with clock("moe"):
            tokens, relevance = model.route(layer, state)
            payload_bits, layout = air_payload(config.moe, model, layer)
        problem = JointProblem(
            relevance=relevance, rate_dispatch=rate_d[:, layer], payload_bits_dispatch=payload_bits,
            rate_return=rate_u[:, layer], payload_bits_return=payload_bits,
            subcarrier_power_w=power_w, max_experts=min(config.max_experts, model.num_experts),
            importance=rho_layers[layer] if layerwise else config.importance,
            compute_energy_j=config.compute_energy_j)
        with clock("scheduler"):
            decision = decide(scheme, problem, rng=rng, top_k=config.top_k,
                              weighted_sum_lambda=config.weighted_sum_lambda,
                              compute_time_s=config.compute_time_s, layer=layer, config=config)
        outcome = play_round(model, layer, state, tokens, relevance, decision,
                             links=rounds[layer], rate_dispatch=rate_d[:, layer],
                             rate_return=rate_u[:, layer], payload_bits=payload_bits,
                             power_w=power_w, sim=sim, link_seed=seeds.link,
                             bits_per_value=bits_per_value, corrupt=corrupt, clock=clock,
                             layout=layout)
        state = outcome.state
        tally.add_round(outcome, problem.gamma)
    with clock("moe"):
        counts = model.evaluate(state, y)
    tally.add_counts(counts, len(y) * model.tokens_per_example)
    tally.add_seconds(clock.seconds)

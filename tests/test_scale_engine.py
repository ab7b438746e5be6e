"""The engine under the run settings of ``[execution]``: chunks, out-of-memory halving, modes,
precision (small: rayleigh, <= 48 tokens, L = 2, CPU)."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

import dmoe.phy
from dmoe.cosim.config import StudyConfig
from dmoe.cosim import NONDETERMINISTIC_COLUMNS, load_model, run_point

TOKENS = 40
RUN_COLUMNS = ("chunk_size", "num_chunks", "chunk_halvings", "execution.chunk_size",
               "point_seed")


@pytest.fixture(scope="module")
def model():
    return load_model(StudyConfig().moe)


def _metrics(rows, drop=RUN_COLUMNS):
    return {row["scheme"]: {k: v for k, v in row.items()
                            if k not in NONDETERMINISTIC_COLUMNS and k not in drop}
            for row in rows}


def test_one_chunk_as_big_as_the_batch_is_the_unchunked_run(model):
    config = {"num_tokens": TOKENS, "schemes": ["des", "random"]}
    whole = run_point(config)
    one_chunk = run_point({**config, "execution": {"chunk_size": TOKENS + 7}})
    assert _metrics(whole) == _metrics(one_chunk)
    for row in whole + one_chunk:
        assert (row["chunk_size"], row["num_chunks"], row["chunk_halvings"]) == (TOKENS, 1, 0)


def test_chunks_combine_to_the_same_token_metrics_and_are_reproducible(model):
    # With an ideal PHY, Top-D's sets and accuracy depend on the tokens only, not on the channel
    # draw: splitting the tokens into chunks (each with its own channels) must not change them.
    config = {"num_tokens": TOKENS, "schemes": ["top_k", "des"], "max_experts": 2,
              "phy": {"fidelity": "ideal"}}
    whole = _metrics(run_point(config))
    chunked_rows = run_point({**config, "execution": {"chunk_size": 16}})
    chunked = _metrics(chunked_rows)
    for name in ("accuracy", "experts_per_token", "topk_agreement", "relevance_kept",
                 "drop_rate", "requirement_met"):
        assert chunked["top_k"][name] == pytest.approx(whole["top_k"][name], abs=1e-12), name
    assert chunked["top_k"]["experts_per_token"] == 2.0
    # DES still meets the requirement on every token-layer in every chunk.
    assert chunked["des"]["requirement_met"] == 1.0
    for row in chunked_rows:
        assert (row["chunk_size"], row["num_chunks"]) == (16, math.ceil(TOKENS / 16))
    assert _metrics(run_point({**config, "execution": {"chunk_size": 16}})) == chunked


def test_out_of_memory_halves_the_chunk_and_the_rows_equal_a_run_at_that_size(model,
                                                                              monkeypatch):
    config = {"num_tokens": TOKENS, "schemes": ["des", "top_k"]}
    direct = run_point({**config, "execution": {"chunk_size": 10}})
    original = dmoe.phy.sample_links
    sizes = []

    def limited(*args, batch_size, **kwargs):
        sizes.append(batch_size)
        if batch_size > 10:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM (fake) in sample_links")
        return original(*args, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(dmoe.phy, "sample_links", limited)
    halved = run_point(config)
    assert sizes[:2] == [40, 20] and set(sizes[2:]) == {10}
    for row in halved:
        assert (row["chunk_size"], row["num_chunks"], row["chunk_halvings"]) == (10, 4, 2)
    # Restarting at the halved size makes the rows a function of the recorded size.
    same = ("chunk_halvings", "execution.chunk_size", "point_seed")
    assert _metrics(halved, drop=same) == _metrics(direct, drop=same)


def test_every_mode_gives_the_same_decisions_and_is_recorded(model):
    # Rayleigh channels are drawn by numpy, so only the MoE's numerics differ between modes
    # (XLA may fuse float32 ops): decisions and accuracy agree up to a rare near-tie.
    config = {"num_tokens": TOKENS, "schemes": ["top_k", "des"], "phy": {"fidelity": "ideal"}}
    rows = {mode: _metrics(run_point({**config, "execution": {"mode": mode}}),
                           drop=RUN_COLUMNS + ("execution.mode", "execution_mode"))
            for mode in ("eager", "graph", "xla")}
    for mode in ("eager", "xla"):
        for scheme in ("top_k", "des"):
            for name in ("accuracy", "experts_per_token", "topk_agreement"):
                assert rows[mode][scheme][name] == pytest.approx(
                    rows["graph"][scheme][name], abs=1.5 / TOKENS), (mode, scheme, name)
    xla = run_point({**config, "execution": {"mode": "xla"}})
    assert {row["execution_mode"] for row in xla} == {"xla"}
    assert model.execution == "graph"  # the shared model is left in its default mode


def test_double_precision_is_recorded_and_agrees_statistically(model):
    config = {"num_tokens": TOKENS, "schemes": ["top_k"], "max_experts": 2,
              "channel": {"distances_m": [30.0] * 8}}
    single = run_point(config)[0]
    double = run_point({**config, "execution": {"precision": "double"}})[0]
    assert (single["precision"], double["precision"]) == ("single", "double")
    # Double precision draws its own fading (float64 normals): other numbers, same statistics.
    assert double["mean_snr_db"] != single["mean_snr_db"]
    # Same geometry, independent Rayleigh fading: the mean SNR in dB over 40 x 2 x 8 x 64
    # i.i.d. exponential gains has a standard error of about 0.03 dB.
    assert double["mean_snr_db"] == pytest.approx(single["mean_snr_db"], abs=0.2)
    assert double["accuracy"] == pytest.approx(single["accuracy"], abs=0.15)


def test_mode_and_precision_reach_the_phy(model, monkeypatch):
    calls = []
    original_sample, original_simulator = dmoe.phy.sample_links, dmoe.phy.LinkSimulator

    def sample_links(*args, **kwargs):
        calls.append(("sample_links", kwargs["execution"], kwargs["precision"]))
        return original_sample(*args, **kwargs)

    def simulator(*args, **kwargs):
        calls.append(("LinkSimulator", kwargs["execution"], kwargs["precision"]))
        return original_simulator(*args, **kwargs)

    monkeypatch.setattr(dmoe.phy, "sample_links", sample_links)
    monkeypatch.setattr(dmoe.phy, "LinkSimulator", simulator)
    run_point({"num_tokens": 8, "schemes": ["top_k"],
               "execution": {"mode": "eager", "precision": "double", "chunk_size": 4}})
    assert calls == [("LinkSimulator", "eager", "double")] + [
        ("sample_links", "eager", "double")] * 2


def test_chunk_tallies_add_up_to_the_whole_batch(model, monkeypatch):
    # Give every chunk its slice of ONE whole-batch channel draw: then the chunked run sees
    # exactly the channels of the unchunked one, and every metric (energies, latencies, SNR,
    # nodes, accuracy) must come out the same: the chunks' sums are combined correctly.
    original = dmoe.phy.sample_links
    whole = {}

    def sliced(config, batch_size, num_links, seed=0, **kwargs):
        if "links" not in whole:
            whole["links"] = original(config, batch_size=TOKENS, num_links=num_links, seed=123,
                                      **kwargs)
            whole["start"] = 0
        links, start = whole["links"], whole["start"]
        whole["start"] = (start + batch_size) % TOKENS
        fields = {}
        for item in dataclasses.fields(links):
            value = getattr(links, item.name)
            if isinstance(value, np.ndarray) and value.shape[:1] == (TOKENS,):
                value = value[start:start + batch_size]
            fields[item.name] = value
        return type(links)(**fields)

    monkeypatch.setattr(dmoe.phy, "sample_links", sliced)
    config = {"num_tokens": TOKENS, "schemes": ["des", "jesa", "top_k"],
              "phy": {"fidelity": "ideal"}}
    whole_rows = _metrics(run_point(config))
    whole.clear()
    chunked_rows = _metrics(run_point({**config, "execution": {"chunk_size": 16}}))
    for scheme, row in whole_rows.items():
        for name, value in row.items():
            other = chunked_rows[scheme][name]
            if isinstance(value, float):
                assert other == pytest.approx(value, rel=1e-9, abs=1e-15, nan_ok=True), name
            else:
                assert other == value, name


@pytest.mark.parametrize("execution, word", [
    ({"mode": "jit"}, "mode"), ({"precision": "half"}, "precision"),
    ({"chunk_size": 0}, "chunk_size"), ({"chunk_size": 2.5}, "chunk_size"),
    ({"memory_growth": "sometimes"}, "memory_growth")])
def test_bad_execution_settings_name_the_key(execution, word):
    with pytest.raises(ValueError, match=word):
        StudyConfig(execution=execution)

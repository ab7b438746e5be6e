"""P1 selection: validation, invariants and baselines (docs/scheduler.md)."""

import numpy as np
import pytest

from dmoe.scheduler import (SelectionProblem, SelectionResult, brute_force, channel_only, des,
                            milp_reference, random_selection, top_k, weighted_sum, wlr)


def _instances(seed, batch, num_experts):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(batch, num_experts))
    relevance = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    cost = rng.exponential(size=(batch, num_experts))
    return relevance, cost


# --------------------------------------------------------------------------- validation
G3, C3 = np.array([0.5, 0.3, 0.2]), np.array([3.0, 1.0, 1.0])


@pytest.mark.parametrize("kwargs, message", [
    (dict(relevance=G3, cost=np.ones(4), max_experts=2, importance=0.5), "number of experts"),
    (dict(relevance=np.ones((2, 3)), cost=np.ones((3, 3)), max_experts=2, importance=0.5),
     "broadcast"),
    (dict(relevance=np.ones((3, 3)), cost=np.ones((3, 3)), max_experts=2,
          importance=np.ones(2) * 0.5), "broadcast"),
    (dict(relevance=np.zeros(0), cost=np.zeros(0), max_experts=1, importance=0.5), "K = 0"),
    (dict(relevance=G3, cost=C3, max_experts=0, importance=0.5), "max_experts"),
    (dict(relevance=G3, cost=C3, max_experts=-3, importance=0.5), "max_experts"),
    (dict(relevance=G3, cost=[1.0, -1.0, 1.0], max_experts=2, importance=0.5), "cost must be >= 0"),
    (dict(relevance=G3, cost=[1.0, np.inf, 1.0], max_experts=2, importance=0.5), "cost must be finite"),
    (dict(relevance=G3, cost=[1.0, np.nan, 1.0], max_experts=2, importance=0.5), "cost must be finite"),
    (dict(relevance=[0.5, -0.1, 0.6], cost=C3, max_experts=2, importance=0.5), "relevance must be >= 0"),
    (dict(relevance=[0.5, np.nan, 0.6], cost=C3, max_experts=2, importance=0.5), "relevance must be finite"),
    (dict(relevance=G3, cost=C3, max_experts=2, importance=1.5), r"importance must lie in \[0, 1\]"),
    (dict(relevance=G3, cost=C3, max_experts=2, importance=-0.1), r"importance must lie in \[0, 1\]"),
    (dict(relevance=G3, cost=C3, max_experts=2, importance=np.nan), r"importance must lie in \[0, 1\]"),
    (dict(relevance=G3, cost=C3, max_experts=2, importance=0.5, threshold=0.3), "exactly one"),
    (dict(relevance=G3, cost=C3, max_experts=2), "exactly one"),
    (dict(relevance=G3, cost=C3, max_experts=2, threshold=np.nan), "threshold"),
    # As JointProblem: an absolute requirement is a relevance mass, finite and >= 0.
    (dict(relevance=G3, cost=C3, max_experts=2, threshold=-1.0), "threshold must be non-negative"),
    (dict(relevance=G3, cost=C3, max_experts=2, threshold=np.inf), "threshold must be non-negative"),
    (dict(relevance=np.tile(G3, (2, 1)), cost=C3, max_experts=2, threshold=[0.5, -1.0]),
     "threshold must be non-negative"),
])
def test_validation_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelectionProblem(**kwargs)


@pytest.mark.parametrize("argument", ["relevance", "cost"])
def test_complex_arrays_are_refused(argument):
    """A complex array is refused like a complex list (numpy alone would drop the imaginary
    part with a warning)."""
    kwargs = dict(relevance=G3, cost=C3, max_experts=2, importance=0.5)
    kwargs[argument] = kwargs[argument] + 0.5j
    with pytest.raises(TypeError, match=f"{argument} must be an array of real numbers"):
        SelectionProblem(**kwargs)


def test_max_experts_must_be_integer():
    with pytest.raises(TypeError, match="max_experts"):
        SelectionProblem(G3, C3, max_experts=2.5, importance=0.5)


def test_baseline_argument_errors():
    p = SelectionProblem(G3, C3, max_experts=2, importance=0.5)
    with pytest.raises(ValueError, match="k must be"):
        top_k(p, 0)
    with pytest.raises(ValueError, match="k must be"):
        top_k(p, 4)
    with pytest.raises(ValueError, match="lam must be"):
        weighted_sum(p, 1.5)
    with pytest.raises(ValueError, match="latency"):
        wlr(p, latency=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="latency"):
        wlr(p, latency=np.ones(4))
    with pytest.raises(TypeError, match="rng"):
        random_selection(p, rng="seed")
    with pytest.raises(TypeError, match="SelectionProblem"):
        des((G3, C3))


def test_requirement_and_broadcasting():
    p = SelectionProblem(G3, C3, max_experts=2, importance=[0.0, 0.5, 1.0])
    assert p.batch_shape == (3,)
    np.testing.assert_allclose(p.requirement, [0.0, 0.4, 0.8])
    q = SelectionProblem(np.tile(G3, (2, 1)), C3, max_experts=5, threshold=0.95)
    assert q.cost.shape == (2, 3) and q.effective_max_experts == 3
    np.testing.assert_allclose(q.requirement, [0.95, 0.95])


# ------------------------------------------------------------------------ result contract
def test_result_fields_and_shapes():
    relevance, cost = _instances(0, 6, 7)
    p = SelectionProblem(relevance.reshape(2, 3, 7), cost.reshape(2, 3, 7), max_experts=3,
                         importance=0.7)
    for result in (des(p), brute_force(p), milp_reference(p), top_k(p, 2), channel_only(p),
                   random_selection(p, 0), weighted_sum(p, 0.5), wlr(p)):
        assert isinstance(result, SelectionResult)
        assert result.selected.shape == (2, 3, 7) and result.selected.dtype == bool
        assert result.cost.shape == result.feasible.shape == result.nodes.shape == (2, 3)
        assert result.status.shape == (2, 3) and result.solve_time_s >= 0
        np.testing.assert_allclose(result.cost, np.where(result.selected, p.cost, 0).sum(-1))


def test_single_instance_is_scalar_shaped():
    r = des(SelectionProblem(G3, C3, max_experts=2, importance=0.9))
    assert r.selected.shape == (3,) and r.cost.shape == ()
    assert r.selected.tolist() == [True, True, False] and float(r.cost) == 4.0
    assert str(r.status) == "optimal" and bool(r.feasible)


def test_unreachable_threshold_is_infeasible_not_an_error():
    p = SelectionProblem([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]], C3, max_experts=2,
                         threshold=[0.81, 0.79])
    for solver in (des, brute_force, milp_reference):
        r = solver(p)
        assert r.feasible.tolist() == [False, True]
        assert r.status.tolist() == ["infeasible", "optimal"]
        assert np.isinf(r.cost[0]) and not r.selected[0].any()
        assert r.cost[1] == 4.0


def test_batched_call_equals_single_calls():
    relevance, cost = _instances(1, 20, 12)
    batched = des(SelectionProblem(relevance, cost, max_experts=4, importance=0.8))
    for b in range(20):
        single = des(SelectionProblem(relevance[b], cost[b], max_experts=4, importance=0.8))
        assert single.cost == pytest.approx(batched.cost[b], rel=1e-12)


# ------------------------------------------------------------------------ invariants
def test_rho_one_gives_a_top_d_set_with_ties():
    rng = np.random.default_rng(2)
    relevance = rng.integers(0, 4, size=(200, 9)) / 4.0       # many exact ties and zeros
    relevance[:, 0] += 0.25                                     # at least one positive score
    cost = rng.integers(0, 3, size=(200, 9)).astype(float)
    for max_experts in (1, 3, 9):
        p = SelectionProblem(relevance, cost, max_experts=max_experts, importance=1.0)
        r = des(p)
        top = np.sort(relevance, -1)[:, ::-1][:, :max_experts].sum(-1)
        assert r.feasible.all()
        np.testing.assert_allclose(r.relevance, top, rtol=1e-12)
        np.testing.assert_allclose(r.cost, brute_force(p).cost)


def test_rho_zero_gives_cheapest_single_expert():
    relevance, cost = _instances(3, 50, 10)
    r = des(SelectionProblem(relevance, cost, max_experts=4, importance=0.0))
    assert (r.num_selected == 1).all()
    np.testing.assert_array_equal(r.cost, cost.min(-1))


def test_cost_monotone_in_rho_and_sets_feasible():
    relevance, cost = _instances(4, 40, 16)
    rho = np.linspace(0.0, 1.0, 11)
    p = SelectionProblem(relevance[:, None, :], cost[:, None, :], max_experts=4, importance=rho)
    r = des(p)
    assert r.cost.shape == (40, 11) and r.feasible.all()
    assert (r.num_selected >= 1).all() and (r.num_selected <= 4).all()
    assert (r.relevance >= p.requirement - 1e-12).all()
    assert (np.diff(r.cost, axis=1) >= -1e-12).all()


def test_degenerate_instances_match_brute_force():
    cases = [
        (np.ones(8) / 8, np.ones(8)),                     # all equal
        (np.zeros(6), np.arange(6.0)),                    # all relevance zero
        (np.array([0, 0, 1.0, 0, 0]), np.zeros(5)),       # one relevant expert, free costs
        (np.array([0.4, 0.4, 0.1, 0.1]), np.array([1.0, 1.0, 0.0, 0.0])),
    ]
    for relevance, cost in cases:
        for max_experts in range(1, relevance.size + 1):
            for rho in (0.0, 0.3, 0.5, 1.0):
                p = SelectionProblem(relevance, cost, max_experts=max_experts, importance=rho)
                a, b = des(p), brute_force(p)
                assert bool(a.feasible) == bool(b.feasible)
                assert float(a.cost) == pytest.approx(float(b.cost))


# ------------------------------------------------------------------------ baselines
def test_baselines_follow_their_rules():
    relevance, cost = _instances(5, 30, 10)
    p = SelectionProblem(relevance, cost, max_experts=4, importance=0.6)
    gamma = p.requirement
    optimum = des(p).cost

    r = top_k(p, 4)
    assert (r.num_selected == 4).all() and r.feasible.all()       # top-D always meets rho <= 1
    np.testing.assert_allclose(r.relevance, p.top_relevance)
    assert (r.cost >= optimum - 1e-12).all()

    r = channel_only(p)
    for b in range(30):
        order = np.argsort(cost[b], kind="stable")
        count = int(r.num_selected[b])
        assert set(np.flatnonzero(r.selected[b])) == set(order[:count])
        if count < 4:
            assert relevance[b, order[:count]].sum() >= gamma[b] - 1e-12
            assert relevance[b, order[:count - 1]].sum() < gamma[b]

    for result in (channel_only(p), random_selection(p, np.random.default_rng(0)),
                   weighted_sum(p, 0.5), wlr(p), top_k(p, 1)):
        feasible = result.feasible
        assert (result.cost[feasible] >= optimum[feasible] - 1e-12).all()
        assert ((result.status == "feasible") == feasible).all()
        assert np.isfinite(result.cost).all()              # infeasible sets keep their cost


def test_random_selection_is_reproducible_and_weighted_sum_extremes():
    relevance, cost = _instances(6, 30, 10)
    p = SelectionProblem(relevance, cost, max_experts=3, importance=0.5)
    np.testing.assert_array_equal(random_selection(p, 7).selected,
                                  random_selection(p, np.random.default_rng(7)).selected)
    assert (weighted_sum(p, 1.0).num_selected == 1).all()
    np.testing.assert_array_equal(weighted_sum(p, 1.0).cost, cost.min(-1))
    np.testing.assert_allclose(weighted_sum(p, 0.0).relevance, p.top_relevance)


def test_wlr_ranks_relevance_over_latency():
    p = SelectionProblem([0.4, 0.35, 0.25], [1.0, 1.0, 1.0], max_experts=2, importance=0.5)
    # ratios 0.4/4 = 0.1, 0.35/1 = 0.35, 0.25/0.5 = 0.5: take 2 (0.25 < 0.375), then 1.
    r = wlr(p, latency=[4.0, 1.0, 0.5])
    assert r.selected.tolist() == [False, True, True] and bool(r.feasible)
    assert wlr(p).selected.tolist() == [True, False, False]     # latency = cost: by relevance


# ------------------------------------------------------------------------ the demo command
def test_select_demo_prints_every_scheme(capsys):
    import argparse

    from dmoe.cosim import _cmd_select_demo as demo

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    assert demo.run(parser.parse_args(["--instances", "6", "--experts", "9", "--no-milp"])) == 0
    out = capsys.readouterr().out
    for name in ("DES (exact)", "brute force", "Top-1", "Top-4", "channel-only", "random",
                 "weighted sum", "WLR"):
        assert name in out
    with pytest.raises(ValueError, match="importance"):
        demo.run(parser.parse_args(["--importance", "1.5"]))

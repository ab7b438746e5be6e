"""P2 / JESA without a deadline: validity, the structural fact, monotone iterations, exactness."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmoe.scheduler import (
    JointProblem,
    SelectionProblem,
    brute_force,
    des_decoupled,
    des_random_subcarriers,
    jesa,
    jesa_exact,
    top_k_joint,
)

SUBCARRIER_SPACING_HZ = 30e3


def make_problem(seed, batch, k, n, d, rho=None, threshold=None, with_return=True, dead=0.0,
                 compute=False, ties=False):
    """Random Rayleigh instances: shannon rates of exponential SNRs (mean 10 dB)."""
    rng = np.random.default_rng(seed)
    relevance = rng.dirichlet(np.full(k, 0.7), size=batch)
    if ties:
        relevance = np.round(relevance * 4) / 4

    def rates():
        snr = 10.0 * rng.exponential(size=(batch, k, n))
        rate = SUBCARRIER_SPACING_HZ * np.log2(1 + snr)
        if ties:
            rate = np.round(rate / 4e4) * 4e4
        return np.where(rng.random((batch, k, n)) < dead, 0.0, rate)

    extra = {}
    if with_return:
        extra.update(rate_return=rates(), payload_bits_return=rng.uniform(1e4, 4e4, size=(batch, k)))
    if compute:
        extra["compute_energy_j"] = rng.uniform(0, 0.01, size=(batch, k))
    if threshold is not None:
        extra["threshold"] = threshold
    else:
        extra["importance"] = rho if rho is not None else rng.uniform(0, 1, size=batch)
    return JointProblem(relevance=relevance, rate_dispatch=rates(), payload_bits_dispatch=32768,
                        subcarrier_power_w=0.01, max_experts=d, **extra)


def independent_energy(problem, selected, dispatch, returned):
    """Energy recomputed from the model (docs/jesa.md), P |N_k| B / sum r, summed over links and phases."""
    power = problem.subcarrier_power_w
    total = np.where(selected, problem.compute_energy_j, 0.0).sum(-1)
    phases = [(problem.rate_dispatch, problem.payload_bits_dispatch, dispatch)]
    if problem.has_return:
        phases.append((problem.rate_return, problem.payload_bits_return, returned))
    for rate, bits, mask in phases:
        count = mask.sum(-1)
        rate_sum = (rate * mask).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            link = np.where(count > 0, power * count * bits / rate_sum, 0.0)
        total = total + link.sum(-1)
    return total


def assert_valid(problem, res, one_subcarrier=True):
    """Every constraint of P2 on every feasible instance; infeasible ones carry no decision."""
    sel, d, u = res.selected, res.dispatch, res.returned
    f = res.feasible
    assert sel.shape == problem.relevance.shape and d.shape == problem.rate_dispatch.shape
    assert np.all(~sel[~f]) and np.all(~d[~f]) and np.all(~u[~f]) and np.all(np.isinf(res.energy_j[~f]))
    masks = [d] + ([u] if problem.has_return else [])
    if not problem.has_return:
        assert not u.any()
    count = sel.sum(-1)
    assert np.all((count[f] >= 1) & (count[f] <= problem.max_experts))
    reached = (sel * problem.relevance).sum(-1)
    assert np.all(reached[f] >= problem.gamma[f] - 1e-9)
    for mask in masks:
        assert np.all(mask.sum(-2) <= 1), "subcarriers shared within a phase"
        assert np.array_equal(mask.any(-1)[f], sel[f]), "link without subcarrier or unselected link with one"
        if one_subcarrier:
            assert np.all(mask.sum(-1)[f] == sel[f])
    np.testing.assert_allclose(res.energy_j[f], independent_energy(problem, sel, d, u)[f], rtol=1e-12)


# ------------------------------------------------------------------------ structural fact
@given(
    rates=st.lists(st.floats(1e3, 1e7), min_size=1, max_size=12),
    data=st.data(),
)
def test_single_best_subcarrier_never_costs_more(rates, data):
    """Replacing a link's set by its single best member never raises the link's energy."""
    n = len(rates)
    subset = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    p = JointProblem(relevance=[1.0], rate_dispatch=[rates], payload_bits_dispatch=1e4,
                     subcarrier_power_w=0.02, max_experts=1, importance=1.0)
    full = np.zeros((1, n), dtype=bool)
    full[0, subset] = True
    best = np.zeros((1, n), dtype=bool)
    best[0, subset[int(np.argmax(np.asarray(rates)[subset]))]] = True
    energy_set = p.energy_j([True], full)
    energy_best = p.energy_j([True], best)
    assert energy_best <= energy_set * (1 + 1e-12)
    # the mean-rate form: E = P B / mean rate
    np.testing.assert_allclose(energy_set, 0.02 * 1e4 / np.mean(np.asarray(rates)[subset]), rtol=1e-12)


# ------------------------------------------------------------------------ JESA validity
@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 8),
    n=st.integers(1, 12),
    d=st.integers(1, 4),
    with_return=st.booleans(),
    dead=st.sampled_from([0.0, 0.5]),
    ties=st.booleans(),
)
def test_jesa_returns_valid_allocations(seed, k, n, d, with_return, dead, ties):
    p = make_problem(seed, 6, k, n, d, with_return=with_return, dead=dead, compute=True, ties=ties)
    res = jesa(p)
    assert_valid(p, res)
    decoupled = des_decoupled(p)
    assert_valid(p, decoupled)
    exact = jesa_exact(p, method="enumerate")
    assert_valid(p, exact)
    for baseline in (top_k_joint(p, min(d, k), "random", rng=seed), top_k_joint(p, min(d, k)),
                     des_random_subcarriers(p, seed)):
        assert_valid(p, baseline)
        assert np.all(baseline.energy_j[baseline.feasible] >= exact.energy_j[baseline.feasible] * (1 - 1e-9))
    # JESA never loses to its own starting point, never beats the optimum, and finds a decision
    # whenever the decoupled start does.
    assert np.all(res.energy_j <= decoupled.energy_j * (1 + 1e-12))
    assert np.all(res.energy_j >= exact.energy_j * (1 - 1e-9))
    assert np.all(res.feasible >= decoupled.feasible)
    assert np.all(exact.feasible >= res.feasible)
    # history: starts at the decoupled baseline, never increases, ends at the answer
    h = res.history
    np.testing.assert_array_equal(h[..., 0], decoupled.energy_j)
    finite = np.isfinite(h)
    assert np.all(finite[..., 1:] >= finite[..., :-1])
    assert np.all((h[..., 1:] <= h[..., :-1])[finite[..., :-1]])
    np.testing.assert_array_equal(h[..., -1], res.energy_j)
    assert np.all(res.iterations >= 1) and np.all(res.status[res.feasible] == "converged")


def test_history_strictly_improves_when_iterating():
    """On crowded instances (N close to K) JESA does more than one round and gains energy."""
    p = make_problem(7, 400, 8, 8, 3, rho=0.6)
    res = jesa(p)
    decoupled = des_decoupled(p)
    assert res.iterations.max() >= 3
    assert np.any(res.energy_j < decoupled.energy_j * (1 - 1e-6))
    assert np.all(np.diff(res.history, axis=-1) <= 0)


def test_collision_blamed_on_the_holder_lets_an_outsider_in():
    """Hand-built collision: a and b both want subcarrier 0, b must stay (gamma), and c is the
    right partner for b. Energies E[k, n] = P B / r[k, n] = 1 mJ x table below, threshold 0.7:

        a: 1.0  10   (g 0.3)      decoupled DES picks {a, b} (2.1), Hungarian gives 1.0 + 3.0 = 4.0
        b: 1.1  3.0  (g 0.5)      the optimum is {b, c}: 1.1 + 1.6 = 2.7
        c: 5.0  1.6  (g 0.2)
    """
    energy_mj = np.array([[1.0, 10.0], [1.1, 3.0], [5.0, 1.6]])
    power_w, bits = 0.01, 1e4
    p = JointProblem(relevance=[0.3, 0.5, 0.2], rate_dispatch=power_w * bits / (energy_mj * 1e-3),
                     payload_bits_dispatch=bits, subcarrier_power_w=power_w, max_experts=2, threshold=0.7)
    start, res = des_decoupled(p), jesa(p)
    np.testing.assert_allclose(start.energy_j, 4.0e-3, rtol=1e-12)
    np.testing.assert_array_equal(res.selected, [False, True, True])
    np.testing.assert_array_equal(res.dispatch, [[False, False], [True, False], [False, True]])
    np.testing.assert_allclose(res.energy_j, 2.7e-3, rtol=1e-12)
    np.testing.assert_allclose(res.history, [4.0e-3, 2.7e-3, 2.7e-3], rtol=1e-12)
    np.testing.assert_allclose(jesa_exact(p, "milp").energy_j, 2.7e-3, rtol=1e-9)


# ------------------------------------------------------------------------ exactness
@settings(max_examples=50)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 6),
    n=st.integers(1, 8),
    d=st.integers(1, 4),
    with_return=st.booleans(),
    use_threshold=st.booleans(),
    dead=st.sampled_from([0.0, 0.3]),
)
def test_milp_and_enumeration_agree(seed, k, n, d, with_return, use_threshold, dead):
    threshold = np.random.default_rng(seed).uniform(0, 1.2, size=3) if use_threshold else None
    p = make_problem(seed, 3, k, n, d, threshold=threshold, with_return=with_return, dead=dead, compute=True)
    milp = jesa_exact(p, method="milp")
    enum = jesa_exact(p, method="enumerate")
    assert_valid(p, milp)
    assert_valid(p, enum)
    np.testing.assert_array_equal(milp.feasible, enum.feasible)
    np.testing.assert_allclose(milp.energy_j, enum.energy_j, rtol=1e-7)


def exhaustive_dispatch_only(p):
    """Optimum over every map expert -> (no subcarrier | one subcarrier), by brute force."""
    g, gamma = p.relevance, p.gamma - p.gamma_tolerance
    k, n = p.num_experts, p.num_subcarriers
    best = np.inf
    for choice in itertools.product(range(-1, n), repeat=k):
        choice = np.array(choice)
        used = choice[choice >= 0]
        if len(set(used.tolist())) != used.size or not 1 <= used.size <= p.max_experts:
            continue
        sel = choice >= 0
        if g[sel].sum() < gamma:
            continue
        rate = p.rate_dispatch[np.flatnonzero(sel), used]
        if np.any(rate == 0):
            continue
        energy = (p.subcarrier_power_w[sel] * p.payload_bits_dispatch[sel] / rate).sum()
        best = min(best, energy + p.compute_energy_j[sel].sum())
    return best


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 4), n=st.integers(1, 4), d=st.integers(1, 3))
def test_exact_matches_exhaustive_assignment_search(seed, k, n, d):
    p = make_problem(seed, 1, k, n, d, with_return=False, dead=0.2, compute=True)
    single = JointProblem(relevance=p.relevance[0], rate_dispatch=p.rate_dispatch[0],
                          payload_bits_dispatch=p.payload_bits_dispatch[0],
                          subcarrier_power_w=p.subcarrier_power_w[0], max_experts=d,
                          importance=p.importance[0], compute_energy_j=p.compute_energy_j[0])
    expected = exhaustive_dispatch_only(single)
    got = jesa_exact(single, method="milp").energy_j
    if np.isinf(expected):
        assert np.isinf(got)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_decoupled_optimum_when_best_subcarriers_never_collide():
    """Each expert's best subcarrier is its own: JESA = P1 on min_n E[k, n] = joint optimum."""
    rng = np.random.default_rng(3)
    batch, k, n = 40, 6, 12
    rate = rng.uniform(1e4, 5e4, size=(batch, k, n))
    rate[:, np.arange(k), 2 * np.arange(k)] = rng.uniform(1e5, 2e5, size=(batch, k))
    p = JointProblem(relevance=rng.dirichlet(np.ones(k), batch), rate_dispatch=rate,
                     payload_bits_dispatch=1e4, subcarrier_power_w=0.01, max_experts=3, importance=0.8)
    res = jesa(p)
    assert_valid(p, res)
    best_cost = (0.01 * 1e4 / rate).min(-1)
    reference = brute_force(SelectionProblem(relevance=p.relevance, cost=best_cost, max_experts=3, importance=0.8))
    np.testing.assert_allclose(res.energy_j, reference.cost, rtol=1e-12)
    np.testing.assert_allclose(res.energy_j, jesa_exact(p, "milp").energy_j, rtol=1e-9)
    # one DES on the decoupled costs; no collision, so no second call is needed
    assert np.all(res.iterations == 1)


# ------------------------------------------------------------------------ batches and baselines
def test_batch_shape_matches_single_calls():
    p = make_problem(11, 6, 5, 6, 2, with_return=True, compute=True)
    res = jesa(p)
    shaped = JointProblem(
        relevance=p.relevance.reshape(2, 3, 5), rate_dispatch=p.rate_dispatch.reshape(2, 3, 5, 6),
        payload_bits_dispatch=p.payload_bits_dispatch.reshape(2, 3, 5),
        rate_return=p.rate_return.reshape(2, 3, 5, 6), payload_bits_return=p.payload_bits_return.reshape(2, 3, 5),
        subcarrier_power_w=0.01, max_experts=2, importance=p.importance.reshape(2, 3),
        compute_energy_j=p.compute_energy_j.reshape(2, 3, 5))
    batched = jesa(shaped)
    assert batched.selected.shape == (2, 3, 5) and batched.returned.shape == (2, 3, 5, 6)
    assert batched.energy_j.shape == (2, 3) and batched.iterations.shape == (2, 3)
    np.testing.assert_array_equal(batched.energy_j.ravel(), res.energy_j)
    for i in range(6):
        one = JointProblem(relevance=p.relevance[i], rate_dispatch=p.rate_dispatch[i],
                           payload_bits_dispatch=p.payload_bits_dispatch[i], rate_return=p.rate_return[i],
                           payload_bits_return=p.payload_bits_return[i], subcarrier_power_w=0.01,
                           max_experts=2, importance=p.importance[i], compute_energy_j=p.compute_energy_j[i])
        single = jesa(one)
        assert single.energy_j.shape == ()
        np.testing.assert_allclose(single.energy_j, res.energy_j[i], rtol=1e-12)
        np.testing.assert_array_equal(single.selected, res.selected[i])


def test_rho_one_is_top_d_and_matches_top_k_with_hungarian():
    p = make_problem(5, 30, 8, 16, 3, rho=1.0)
    res = jesa(p)
    top = top_k_joint(p, 3, subcarriers="hungarian")
    assert_valid(p, top)
    np.testing.assert_array_equal(res.selected, top.selected)
    np.testing.assert_allclose(res.energy_j, top.energy_j, rtol=1e-12)
    np.testing.assert_allclose(top.energy_j, jesa_exact(p, "milp").energy_j, rtol=1e-9)


def test_baselines_are_valid_and_never_beat_the_optimum():
    p = make_problem(9, 20, 6, 10, 3, rho=0.7, compute=True)
    exact = jesa_exact(p, "enumerate")
    for res in (top_k_joint(p, 3, "random", rng=1), top_k_joint(p, 3, "hungarian"),
                des_random_subcarriers(p, np.random.default_rng(2)), des_decoupled(p)):
        assert_valid(p, res)
        assert np.all(res.energy_j[res.feasible] >= exact.energy_j[res.feasible] * (1 - 1e-9))
    hungarian = top_k_joint(p, 3, "hungarian")
    random = top_k_joint(p, 3, "random", rng=1)
    assert np.all(hungarian.energy_j <= random.energy_j * (1 + 1e-12))
    # same seed, same decision
    again = des_random_subcarriers(p, np.random.default_rng(2))
    np.testing.assert_array_equal(again.dispatch, des_random_subcarriers(p, np.random.default_rng(2)).dispatch)


def test_top_k_missing_gamma_is_infeasible():
    p = make_problem(4, 10, 6, 8, 3, rho=1.0)
    res = top_k_joint(p, 1)
    g = np.sort(p.relevance, -1)[:, ::-1]
    misses = g[:, 0] < g[:, :3].sum(-1) - 1e-12
    np.testing.assert_array_equal(res.feasible, ~misses)
    assert np.all(res.status[misses] == "infeasible")


def test_more_experts_needed_than_subcarriers():
    """rho = 1 with D = 3 and N = 2: no allocation exists; reported, not hidden."""
    rng = np.random.default_rng(0)
    p = JointProblem(relevance=[0.4, 0.3, 0.2, 0.1], rate_dispatch=rng.uniform(1e4, 1e5, (4, 2)),
                     payload_bits_dispatch=1e4, subcarrier_power_w=0.01, max_experts=3, importance=1.0)
    for res in (jesa(p), jesa_exact(p, "milp"), jesa_exact(p, "enumerate")):
        assert not res.feasible and res.status == "infeasible" and np.isinf(res.energy_j)
        assert not res.dispatch.any()


def test_unreachable_threshold_is_infeasible():
    p = make_problem(1, 4, 5, 6, 2, threshold=np.array([0.1, 0.5, 5.0, 2.0]))
    for res in (jesa(p), jesa_exact(p, "milp")):
        np.testing.assert_array_equal(res.feasible, [True, True, False, False])


# ------------------------------------------------------------------------ validation
def _kwargs(**override):
    base = dict(relevance=np.full((2, 3), 1 / 3), rate_dispatch=np.ones((2, 3, 4)), payload_bits_dispatch=100.0,
                subcarrier_power_w=0.01, max_experts=2, importance=0.5)
    base.update(override)
    return base


@pytest.mark.parametrize(
    "override, match",
    [
        (dict(relevance=np.ones((2, 0))), "relevance"),
        (dict(relevance=-np.ones((2, 3))), "relevance"),
        (dict(relevance=np.full((2, 3), np.nan)), "relevance"),
        (dict(rate_dispatch=np.ones((2, 3))), "rate_dispatch"),
        (dict(rate_dispatch=np.ones((2, 4, 4))), "rate_dispatch"),
        (dict(rate_dispatch=-np.ones((2, 3, 4))), "rate_dispatch"),
        (dict(rate_dispatch=np.full((2, 3, 4), np.inf)), "rate_dispatch"),
        (dict(payload_bits_dispatch=0.0), "payload_bits_dispatch"),
        (dict(payload_bits_dispatch=np.ones(5)), "payload_bits_dispatch"),
        (dict(subcarrier_power_w=-1.0), "subcarrier_power_w"),
        (dict(max_experts=0), "max_experts"),
        (dict(importance=1.5), "importance"),
        (dict(importance=None), "importance"),
        (dict(threshold=0.3), "importance"),
        (dict(importance=None, threshold=-1.0), "threshold"),
        (dict(rate_return=np.ones((2, 3, 4))), "rate_return"),
        (dict(rate_return=np.ones((2, 3, 5)), payload_bits_return=1.0), "rate_return"),
        (dict(deadline_s=0.0), "deadline_s"),
        (dict(deadline_s=(1.0, 2.0, 3.0)), "deadline_s"),
        (dict(compute_energy_j=-np.ones(3)), "compute_energy_j"),
    ],
)
def test_validation_errors_name_the_argument(override, match):
    with pytest.raises(ValueError, match=match):
        JointProblem(**_kwargs(**override))


def test_type_and_method_errors():
    with pytest.raises(TypeError, match="max_experts"):
        JointProblem(**_kwargs(max_experts=2.0))
    # A complex array is refused like a complex list (as SelectionProblem does).
    with pytest.raises(TypeError, match="relevance"):
        JointProblem(**_kwargs(relevance=np.ones((2, 3)) + 0.5j))
    with pytest.raises(TypeError, match="rate_dispatch"):
        JointProblem(**_kwargs(rate_dispatch=np.ones((2, 3, 4), dtype=complex)))
    p = JointProblem(**_kwargs())
    with pytest.raises(TypeError, match="problem"):
        jesa("not a problem")
    with pytest.raises(ValueError, match="method"):
        jesa_exact(p, method="cplex")
    with pytest.raises(ValueError, match="milp"):
        jesa_exact(JointProblem(**_kwargs(deadline_s=1.0)), method="milp")
    with pytest.raises(ValueError, match="k"):
        top_k_joint(p, 0)
    with pytest.raises(ValueError, match="subcarriers"):
        top_k_joint(p, 1, subcarriers="best")
    with pytest.raises(TypeError, match="rng"):
        top_k_joint(p, 1, subcarriers="random")


_RESULT_ARRAYS = ("selected", "dispatch", "returned", "energy_j", "feasible", "iterations", "status", "history",
                  "energy_dispatch_j", "energy_return_j", "energy_compute_j", "airtime_dispatch_s",
                  "airtime_return_s")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 8), n=st.integers(1, 24), d=st.integers(1, 4),
       with_return=st.booleans(), compute=st.booleans(), dead=st.sampled_from([0.0, 0.5]))
def test_single_calls_equal_the_batched_call(seed, k, n, d, with_return, compute, dead):
    """Each instance solved alone (the single-instance paths) gives its row of the batched call."""
    batch = 4
    p = make_problem(seed, batch, k, n, d, with_return=with_return, compute=compute, dead=dead)
    batched = jesa(p)
    for i in range(batch):
        extra = {"compute_energy_j": p.compute_energy_j[i]}
        if with_return:
            extra.update(rate_return=p.rate_return[i], payload_bits_return=p.payload_bits_return[i])
        single = jesa(JointProblem(relevance=p.relevance[i], rate_dispatch=p.rate_dispatch[i],
                                   payload_bits_dispatch=p.payload_bits_dispatch[i], subcarrier_power_w=0.01,
                                   max_experts=d, importance=p.importance[i], **extra))
        for name in _RESULT_ARRAYS:
            got, want = getattr(single, name), getattr(batched, name)[i]
            if name == "history":  # the batch pads each row to the longest history with its final value
                width = got.shape[-1]
                np.testing.assert_array_equal(want[width:], np.full(want.shape[-1] - width, got[-1]))
                want = want[:width]
            np.testing.assert_array_equal(got, want, err_msg=name)

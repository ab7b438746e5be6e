"""P2 with an airtime deadline: several subcarriers per link, exact enumeration for tiny sizes."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dmoe.scheduler import JointProblem, des_decoupled, jesa, jesa_exact, top_k_joint

POWER_W = 0.01


def make_problem(seed, batch, k, n, d, deadline_s, with_return=False, rho=None):
    rng = np.random.default_rng(seed)
    rate = lambda: 30e3 * np.log2(1 + 10 * rng.exponential(size=(batch, k, n)))  # noqa: E731
    extra = dict(rate_return=rate(), payload_bits_return=8000.0) if with_return else {}
    return JointProblem(relevance=rng.dirichlet(np.ones(k), batch), rate_dispatch=rate(),
                        payload_bits_dispatch=rng.uniform(5e3, 2e4, size=(batch, k)), subcarrier_power_w=POWER_W,
                        max_experts=d, importance=rng.uniform(0, 1, batch) if rho is None else rho,
                        deadline_s=deadline_s, **extra)


def assert_valid_with_deadline(p, res):
    f = res.feasible
    masks = [(res.dispatch, p.rate_dispatch, p.payload_bits_dispatch, p.deadline_dispatch_s)]
    if p.has_return:
        masks.append((res.returned, p.rate_return, p.payload_bits_return, p.deadline_return_s))
    total = np.zeros(f.shape)
    for mask, rate, bits, deadline in masks:
        assert np.all(mask.sum(-2) <= 1)
        assert np.array_equal(mask.any(-1)[f], res.selected[f])
        rate_sum = (mask * rate).sum(-1)
        sel = res.selected
        with np.errstate(divide="ignore", invalid="ignore"):
            airtime = np.where(sel, bits / rate_sum, 0.0)
        assert np.all(airtime[f] <= deadline[f][:, None] * (1 + 1e-9)), "deadline missed"
        total += np.where(sel, POWER_W * mask.sum(-1) * airtime, 0.0).sum(-1)
    np.testing.assert_allclose(res.energy_j[f], total[f], rtol=1e-12)
    assert not res.dispatch[~f].any() and np.all(np.isinf(res.energy_j[~f]))


def exhaustive(p, i):
    """Optimum of instance i over every map subcarrier -> (unused | expert), dispatch only."""
    k, n = p.num_experts, p.num_subcarriers
    rate, bits = p.rate_dispatch[i], p.payload_bits_dispatch[i]
    need = p.gamma[i] - p.gamma_tolerance[i]
    best = np.inf
    for owner in itertools.product(range(-1, k), repeat=n):
        owner = np.array(owner)
        sel = np.zeros(k, dtype=bool)
        sel[owner[owner >= 0]] = True
        if not 1 <= sel.sum() <= p.max_experts or p.relevance[i][sel].sum() < need:
            continue
        energy = 0.0
        for e in np.flatnonzero(sel):
            rate_sum = rate[e][owner == e].sum()
            if rate_sum <= 0 or bits[e] / rate_sum > p.deadline_dispatch_s[i]:
                energy = np.inf
                break
            energy += POWER_W * (owner == e).sum() * bits[e] / rate_sum
        best = min(best, energy)
    return best


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 3), n=st.integers(1, 5), d=st.integers(1, 3),
       deadline_s=st.sampled_from([0.05, 0.2, 1.0]))
def test_exact_deadline_enumeration_matches_exhaustive(seed, k, n, d, deadline_s):
    p = make_problem(seed, 2, k, n, d, deadline_s)
    exact = jesa_exact(p, method="enumerate")
    assert_valid_with_deadline(p, exact)
    for i in range(2):
        expected = exhaustive(p, i)
        if np.isinf(expected):
            assert not exact.feasible[i]
        else:
            np.testing.assert_allclose(exact.energy_j[i], expected, rtol=1e-9)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 4), n=st.integers(1, 8), d=st.integers(1, 3),
       with_return=st.booleans(), deadline_s=st.sampled_from([0.03, 0.1, 0.5, (0.05, None), (None, 0.05)]))
def test_jesa_with_deadline_is_valid_and_never_beats_the_exact_optimum(seed, k, n, d, with_return, deadline_s):
    p = make_problem(seed, 4, k, n, d, deadline_s, with_return=with_return)
    res = jesa(p)
    exact = jesa_exact(p, method="enumerate")
    assert_valid_with_deadline(p, res)
    assert_valid_with_deadline(p, exact)
    assert np.all(exact.feasible >= res.feasible)
    assert np.all(res.energy_j[res.feasible] >= exact.energy_j[res.feasible] * (1 - 1e-9))
    decoupled = des_decoupled(p)
    assert_valid_with_deadline(p, decoupled)
    assert np.all(res.energy_j <= decoupled.energy_j * (1 + 1e-12))
    with np.errstate(invalid="ignore"):
        steps = np.diff(res.history, axis=-1)
    assert np.all(steps[np.isfinite(steps)] <= 0)
    for baseline in (top_k_joint(p, 1), top_k_joint(p, 1, "random", rng=seed)):
        assert_valid_with_deadline(p, baseline)


def test_deadline_forces_several_subcarriers_and_jesa_is_near_exact():
    """A tight deadline needs more than one subcarrier per link; JESA stays close to the optimum."""
    p = make_problem(0, 60, 4, 8, 2, deadline_s=0.12, rho=0.7)
    res = jesa(p)
    exact = jesa_exact(p, method="enumerate")
    assert_valid_with_deadline(p, res)
    both = res.feasible & exact.feasible
    assert exact.feasible.mean() > 0.9 and res.feasible[exact.feasible].mean() > 0.9
    assert np.any(res.dispatch.sum(-1) >= 2)
    gap = res.energy_j[both] / exact.energy_j[both] - 1
    assert gap.mean() < 0.05


def test_single_link_uses_its_fewest_best_subcarriers():
    """One expert: the fewest best subcarriers meeting B / T are optimal (docs/jesa.md)."""
    rng = np.random.default_rng(4)
    for deadline_s in (0.02, 0.05, 0.2, 1e9):
        p = JointProblem(relevance=[1.0], rate_dispatch=rng.exponential(1e5, (1, 8)), payload_bits_dispatch=1e4,
                         subcarrier_power_w=POWER_W, max_experts=1, importance=1.0, deadline_s=deadline_s)
        res, exact = jesa(p), jesa_exact(p, "enumerate")
        np.testing.assert_array_equal(res.feasible, exact.feasible)
        if exact.feasible:
            np.testing.assert_allclose(res.energy_j, exact.energy_j, rtol=1e-12)
            ranked = np.sort(p.rate_dispatch[0])[::-1]
            fewest = int(np.argmax(np.cumsum(ranked) >= 1e4 / deadline_s)) + 1
            assert res.dispatch.sum() == fewest


def test_loose_deadline_reduces_to_the_assignment_problem():
    """With an airtime limit no link reaches, the exact optimum is the no-deadline MILP's."""
    loose = make_problem(3, 10, 4, 6, 3, deadline_s=1e9, with_return=True)
    free = make_problem(3, 10, 4, 6, 3, deadline_s=None, with_return=True)
    np.testing.assert_allclose(jesa_exact(loose, "enumerate").energy_j, jesa_exact(free, "milp").energy_j, rtol=1e-9)
    assert np.all(jesa_exact(loose, "enumerate").dispatch.sum(-1) <= 1)


def test_impossible_deadline_is_infeasible():
    p = make_problem(1, 3, 3, 4, 2, deadline_s=1e-6)
    for res in (jesa(p), jesa_exact(p, "enumerate"), top_k_joint(p, 2)):
        assert not res.feasible.any() and np.all(res.status == "infeasible")
        assert not res.dispatch.any()

"""allocate_subcarriers (JESA's allocation step) against exhaustive assignment; scheduler doctests."""

import doctest
import importlib
import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from dmoe.scheduler import JointProblem, allocate_subcarriers


def _problem(rng, num_experts, num_subcarriers, batch=()):
    rate_d = rng.exponential(1e5, size=batch + (num_experts, num_subcarriers))
    rate_u = rng.exponential(1e5, size=batch + (num_experts, num_subcarriers))
    return JointProblem(relevance=rng.dirichlet(np.ones(num_experts), size=batch or None),
                        rate_dispatch=rate_d, payload_bits_dispatch=800.0,
                        rate_return=rate_u, payload_bits_return=400.0,
                        subcarrier_power_w=0.01, max_experts=num_experts, importance=1.0)


def _best_assignment_energy(rate, bits, power, chosen):
    """Exhaustive search over injective subcarrier assignments of the chosen experts."""
    best = np.inf
    for subcarriers in itertools.permutations(range(rate.shape[-1]), len(chosen)):
        energy = sum(power * bits / rate[k, n] for k, n in zip(chosen, subcarriers))
        best = min(best, energy)
    return best


@given(seed=st.integers(0, 2**31 - 1), num_experts=st.integers(1, 4),
       num_subcarriers=st.integers(4, 6), data=st.data())
def test_allocation_is_the_optimal_assignment_for_the_set(seed, num_experts, num_subcarriers, data):
    rng = np.random.default_rng(seed)
    problem = _problem(rng, num_experts, num_subcarriers)
    selected = np.array(data.draw(st.lists(st.booleans(), min_size=num_experts,
                                           max_size=num_experts)))
    dispatch, returned, served = allocate_subcarriers(problem, selected)
    assert served
    chosen = np.flatnonzero(selected)
    for mask, rate, bits in ((dispatch, problem.rate_dispatch, 800.0),
                             (returned, problem.rate_return, 400.0)):
        # one subcarrier per selected link, none for the others, no subcarrier used twice
        assert (mask.sum(-1) == selected.astype(int)).all()
        assert mask.sum(0).max(initial=0) <= 1
        energy = sum(0.01 * bits / rate[k, np.flatnonzero(mask[k])[0]] for k in chosen)
        assert energy == pytest.approx(_best_assignment_energy(rate, bits, 0.01, chosen), rel=1e-12)


def test_batch_equals_single_instances_and_shape_is_checked():
    rng = np.random.default_rng(3)
    problem = _problem(rng, 3, 5, batch=(4,))
    selected = rng.random((4, 3)) < 0.6
    dispatch, returned, served = allocate_subcarriers(problem, selected)
    assert dispatch.shape == returned.shape == (4, 3, 5) and served.shape == (4,)
    for b in range(4):
        single = JointProblem(relevance=problem.relevance[b], rate_dispatch=problem.rate_dispatch[b],
                              payload_bits_dispatch=800.0, rate_return=problem.rate_return[b],
                              payload_bits_return=400.0, subcarrier_power_w=0.01, max_experts=3,
                              importance=1.0)
        d, r, _ = allocate_subcarriers(single, selected[b])
        assert (d == dispatch[b]).all() and (r == returned[b]).all()
    with pytest.raises(ValueError, match="selected must have shape"):
        allocate_subcarriers(problem, selected[0])


@pytest.mark.parametrize("module", ["_problem", "_des", "_baselines", "_reference", "_joint",
                                    "_jesa", "_jesa_exact"])
def test_docstring_examples_run(module):
    # The examples in the docstrings are part of the documentation: they must stay true.
    mod = importlib.import_module(f"dmoe.scheduler.{module}")
    failures, attempted = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failures == 0

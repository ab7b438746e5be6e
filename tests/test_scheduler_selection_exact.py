"""DES is exact: against exhaustive search, scipy's MILP (HiGHS) and scipy's LP (docs/scheduler.md)."""

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from scipy.optimize import linprog

from dmoe.scheduler import SelectionProblem, brute_force, des, milp_reference
from dmoe.scheduler._des import _Block, _dual_lp, _lp_bound_below

# Values on a dyadic grid make exact ties (equal scores, equal costs, zeros) common and keep
# every sum exact; free floats cover the generic case.
_grid = st.sampled_from([0.0, 0.125, 0.25, 0.5, 0.75, 1.0])
_relevance = st.one_of(_grid, st.floats(0.0, 1.0, allow_subnormal=False))
_cost = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.floats(0.0, 10.0, allow_subnormal=False))
_importance = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.875, 1.0]), st.floats(0.0, 1.0))


@st.composite
def small_problems(draw, max_k=12):
    num_experts = draw(st.integers(1, max_k))
    relevance = draw(st.lists(_relevance, min_size=num_experts, max_size=num_experts))
    cost = draw(st.lists(_cost, min_size=num_experts, max_size=num_experts))
    max_experts = draw(st.integers(1, num_experts + 1))
    if draw(st.booleans()):
        return SelectionProblem(relevance, cost, max_experts, importance=draw(_importance))
    return SelectionProblem(relevance, cost, max_experts,
                            threshold=draw(st.floats(0.0, 3.0, allow_subnormal=False)))


def _assert_same_optimum(result, reference, rel=1e-9, abs_=1e-12):
    assert bool(result.feasible) == bool(reference.feasible)
    assert str(result.status) in ("optimal", "infeasible")
    assert str(result.status) == str(reference.status)
    if bool(reference.feasible):
        assert float(result.cost) == pytest.approx(float(reference.cost), rel=rel, abs=abs_)


@settings(max_examples=300)
@given(small_problems())
def test_des_matches_brute_force(problem):
    result = des(problem)
    _assert_same_optimum(result, brute_force(problem))
    if bool(result.feasible):
        assert bool(problem.is_feasible(result.selected))


@st.composite
def large_problems(draw):
    num_experts = draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["softmax", "grid", "flat"]))
    if kind == "softmax":
        logits = rng.normal(scale=draw(st.sampled_from([0.5, 1.5, 3.0])), size=num_experts)
        relevance = np.exp(logits) / np.exp(logits).sum()
        cost = rng.lognormal(sigma=1.0, size=num_experts)
    elif kind == "grid":
        relevance = rng.integers(0, 5, size=num_experts) / 8.0
        cost = rng.integers(0, 4, size=num_experts) / 2.0
    else:                                   # equal relevances, near-equal costs
        relevance = np.full(num_experts, 1.0 / num_experts)
        cost = 1.0 + rng.integers(0, 2, size=num_experts) / 4.0
    max_experts = draw(st.sampled_from([1, 2, 4, 6, num_experts]))
    importance = draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 0.9, 1.0]))
    return SelectionProblem(relevance, cost, max_experts, importance=importance)


@settings(max_examples=60)
@given(st.lists(large_problems(), min_size=1, max_size=1), st.integers(0, 2**32 - 1),
       st.integers(1, 8))
def test_single_calls_equal_the_batched_search_bit_for_bit(first, seed, batch):
    """One instance (and batches up to _SCALAR_BATCH_LIMIT) is searched on Python floats; the
    vectorised search must return the same set, the same cost bits and the same node count."""
    template = first[0]
    rng = np.random.default_rng(seed)
    num_experts = template.num_experts
    # The drawn instance plus grid instances with ties and zeros, all of the same K and D.
    relevance = np.vstack([template.relevance,
                           rng.integers(0, 5, (batch + 5, num_experts)) / 8.0])
    cost = np.vstack([template.cost, rng.integers(0, 4, (batch + 5, num_experts)) / 2.0])
    importance = np.concatenate([[float(template.importance)],
                                 rng.choice([0.0, 0.5, 0.9, 1.0], batch + 5)])
    batched = des(SelectionProblem(relevance, cost, template.max_experts, importance=importance))
    small = des(SelectionProblem(relevance[:batch], cost[:batch], template.max_experts,
                                 importance=importance[:batch]))
    for b in range(relevance.shape[0]):
        single = des(SelectionProblem(relevance[b], cost[b], template.max_experts,
                                      importance=importance[b]))
        for other in ([batched] if b >= batch else [batched, small]):
            assert single.selected.tolist() == other.selected[b].tolist()
            assert single.cost.tobytes() == other.cost[b].tobytes()
            assert single.relevance.tobytes() == other.relevance[b].tobytes()
            assert int(single.nodes) == int(other.nodes[b])
            assert str(single.status) == str(other.status[b])


def test_single_call_past_the_node_limit_is_searched_vectorised(monkeypatch):
    """A single instance whose tree outgrows the Python search is searched again vectorised:
    same set, cost bits and node count as the batched search."""
    from dmoe.scheduler import _des

    rng = np.random.default_rng(8)
    logits = rng.normal(scale=0.3, size=(8, 24))
    relevance = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    cost = rng.lognormal(size=(8, 24))
    batched = des(SelectionProblem(relevance, cost, 6, importance=0.9))
    assert batched.nodes.min() > 3
    monkeypatch.setattr(_des, "_SCALAR_NODE_LIMIT", 3)
    for b in range(8):
        single = des(SelectionProblem(relevance[b], cost[b], 6, importance=0.9))
        assert single.selected.tolist() == batched.selected[b].tolist()
        assert single.cost.tobytes() == batched.cost[b].tobytes()
        assert int(single.nodes) == int(batched.nodes[b])


@settings(max_examples=200)
@given(st.lists(st.one_of(st.floats(0.0, 1e6), st.sampled_from([0.0, 0.125, 3.0])), max_size=300))
def test_numpy_sum_is_bit_identical_to_numpy(values):
    from dmoe.scheduler._problem import numpy_sum

    assert numpy_sum(values) == float(np.asarray(values, dtype=np.float64).sum())


@settings(max_examples=100)
@given(large_problems())
def test_des_matches_milp(problem):
    result = des(problem)
    # HiGHS works to absolute tolerances of 1e-6 on the scaled instance.
    _assert_same_optimum(result, milp_reference(problem), rel=1e-6, abs_=1e-9)
    assert bool(problem.is_feasible(result.selected))


def test_des_matches_milp_on_a_batch():
    rng = np.random.default_rng(11)
    logits = rng.normal(scale=1.5, size=(40, 32))
    relevance = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    cost = rng.exponential(size=(40, 32))
    for rho in (0.5, 0.9):
        problem = SelectionProblem(relevance, cost, max_experts=4, importance=rho)
        result, reference = des(problem), milp_reference(problem)
        np.testing.assert_allclose(result.cost, reference.cost, rtol=1e-6)
        assert (result.nodes >= 1).all() and (result.nodes < 2**32).all()


def _lp_optimum(relevance, cost, need, fewest, slots, allowed):
    """scipy's LP (HiGHS) of docs/scheduler.md ("Bound") over the ``allowed`` experts."""
    num_experts = relevance.size
    constraints = np.vstack([-relevance, np.ones(num_experts), -np.ones(num_experts)])
    lp = linprog(cost, A_ub=constraints, b_ub=[-need, slots, -fewest],
                 bounds=[(0.0, 1.0 if a else 0.0) for a in allowed], method="highs")
    assert lp.status == 0
    return lp.fun


def _fewest(relevance, allowed, need):
    """Fewest allowed experts whose relevance reaches ``need`` (by enumeration of sizes)."""
    ranked = np.sort(np.where(allowed, relevance, 0.0))[::-1]
    return int(np.argmax(np.cumsum(ranked) >= need)) + 1


_tied_relevance = st.sampled_from([0.0, 0.25, 0.5, 0.75])
_tied_cost = st.sampled_from([0.0, 1.0, 2.0])


@st.composite
def lp_subproblems(draw, max_k=14):
    """``(relevance, cost, allowed, need, slots)`` of a feasible LP: on a grid with ties and
    zeros (equal costs, equal relevances, zero costs, zero relevances), or generic floats;
    ``slots`` may exceed the number of allowed experts."""
    num_experts = draw(st.integers(1, max_k))
    if draw(st.booleans()):
        relevance = np.array(draw(st.lists(_tied_relevance, min_size=num_experts,
                                           max_size=num_experts)))
        cost = np.array(draw(st.lists(_tied_cost, min_size=num_experts, max_size=num_experts)))
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        relevance = rng.dirichlet(np.ones(num_experts))
        cost = rng.exponential(size=num_experts)
    allowed = np.array(draw(st.lists(st.booleans(), min_size=num_experts, max_size=num_experts)))
    slots = draw(st.integers(1, num_experts))
    # Summed as _fewest sums (a running sum): pairwise .sum() can round above it, and a need
    # of exactly `reachable` would then take one expert more than the slots.
    reachable = np.cumsum(np.sort(np.where(allowed, relevance, 0.0))[::-1])[slots - 1]
    assume(reachable > 0)
    # Exactly the best reachable relevance (fraction 1) and the grid's breakpoints included.
    fraction = draw(st.one_of(st.sampled_from([0.25, 0.5, 1.0]), st.floats(0.01, 1.0)))
    return relevance, cost, allowed, reachable * fraction, slots


@settings(max_examples=300)
@given(lp_subproblems())
def test_lagrangian_bound_equals_lp_optimum(subproblem):
    """The bound of docs/scheduler.md ("Bound") is the optimum of scipy's LP on sub-problems."""
    relevance, cost, allowed, need, slots = subproblem
    fewest = _fewest(relevance, allowed, need)
    value, lam = _dual_lp(relevance[None], cost[None], np.array([need]), np.array([fewest]),
                          np.array([slots]), allowed[None])
    optimum = _lp_optimum(relevance, cost, need, fewest, slots, allowed)
    assert value[0] <= optimum + 1e-9                    # weak duality: a valid bound
    assert value[0] == pytest.approx(optimum, rel=1e-9, abs=1e-9)   # and the LP optimum
    assert lam[0] >= 0


def test_lagrangian_bound_with_more_slots_than_allowed_experts():
    """Once a strict xfail: 8 allowed experts, 9 slots; the tangent at lam -> inf counted a
    disallowed expert and the search stopped at 1.438 below the LP optimum (1.678)."""
    relevance = np.array([0, 0, 3, 2, 2, 2, 3, 3, 1, 1, 0, 0, 3]) / 4.0
    cost = np.array([0, 1, 2, 0, 1, 0, 2, 2, 0, 0, 1, 0, 0], dtype=float)
    allowed = np.array([1, 0, 0, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1], dtype=bool)
    need, slots = 2.629330335076691, 9
    fewest = _fewest(relevance, allowed, need)
    value, _ = _dual_lp(relevance[None], cost[None], np.array([need]), np.array([fewest]),
                        np.array([slots]), allowed[None])
    optimum = _lp_optimum(relevance, cost, need, fewest, slots, allowed)
    assert value[0] == pytest.approx(optimum, rel=1e-9, abs=1e-9)


@settings(max_examples=200)
@given(lp_subproblems(), st.integers(0, 13), st.sampled_from([0.0, 1.0, 2.5]))
def test_search_bound_decides_against_lp_optimum(subproblem, start, taken_cost):
    """The pruning test inside DES prunes a node exactly when ``taken cost + LP optimum``
    reaches the cutoff (scipy's LP on the node's remaining experts, docs: "Bound")."""
    relevance, cost, _, need, slots = subproblem
    num_experts = relevance.size
    blk = _Block(relevance[None], cost[None], np.array([1.0]), slots)
    start = min(start, num_experts - 1)
    allowed = (np.arange(num_experts) >= start) & (np.arange(num_experts) < blk.useful[0])
    inst, first = np.array([0]), np.array([start])
    # The best reachable relevance in the search's own arithmetic (prefix sums), so that a
    # requirement on that knife edge stays feasible for the search.
    reachable, _ = blk.window(inst, first, np.array([slots]))
    assume(reachable[0] > 0)
    need = min(need, reachable[0])
    fewest = blk.fewest(inst, first, np.array([need]), np.array([slots]))
    assert fewest[0] <= slots
    optimum = taken_cost + _lp_optimum(blk.g[0], blk.c[0], need, fewest[0], slots, allowed)
    tolerance = 1e-9 * (1.0 + abs(optimum))
    for cutoff, branch in ((optimum - tolerance, False), (optimum + tolerance, True)):
        decision = _lp_bound_below(blk, inst, first, np.array([taken_cost]), np.array([need]),
                                   np.array([slots]), fewest, np.array([cutoff]))
        assert bool(decision[0]) == branch


def test_suffix_tables_both_forms_match_enumeration():
    """The m cheapest experts of every suffix (the dual at lam = 0), by loop and by matrix."""
    from dmoe.scheduler import _des

    rng = np.random.default_rng(5)
    for _ in range(20):
        batch, num_experts = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        depth = int(rng.integers(1, num_experts + 1))
        cost = rng.integers(0, 4, (batch, num_experts)) / 2.0       # ties on purpose
        relevance = rng.random((batch, num_experts))
        valid = rng.random((batch, num_experts)) < 0.8
        loop = _des._suffix_tables_loop(-cost, relevance, cost, valid, depth)
        matrix = _des._suffix_tables(-cost, relevance, cost, valid, depth)   # small: matrix form
        for b in range(batch):
            for i in range(num_experts + 1):
                cheapest = np.sort(cost[b, i:][valid[b, i:]])
                for m in range(depth + 1):
                    assert loop[1][i, m, b] == pytest.approx(cheapest[:m].sum())
                    assert matrix[1][i, m, b] == pytest.approx(cheapest[:m].sum())

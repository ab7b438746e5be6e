"""Heuristic expert-selection schemes compared with DES (``docs/scheduler.md``, "Baselines").

Every scheme returns a :class:`~dmoe.scheduler.SelectionResult`. A heuristic set that misses the
relevance requirement or holds more than D experts is still returned, with its real cost,
``feasible = False`` and ``status = "infeasible"``; nothing is hidden behind ``inf``.
"""

import numbers
import time

import numpy as np

from ._problem import SelectionProblem, _check_problem, _finish

__all__ = ["top_k", "channel_only", "random_selection", "weighted_sum", "wlr"]


def _take_in_order(problem, order):
    """Take experts in ``order`` [B, K] until the requirement is met, at most D, at least one.

    Returns the selection ``[B, K]`` bool.
    """
    relevance, _, requirement, tolerance = problem._flat()
    need = requirement - tolerance
    ranked = np.take_along_axis(relevance, order, axis=1)
    # Experts needed: 1 + (number of prefixes still short of the requirement), capped at D.
    count = 1 + np.count_nonzero(np.cumsum(ranked, axis=1)[:, :-1] < need[:, None], axis=1)
    count = np.minimum(count, problem.effective_max_experts)
    chosen = np.arange(relevance.shape[1])[None, :] < count[:, None]
    selected = np.zeros_like(chosen)
    np.put_along_axis(selected, order, chosen, axis=1)
    return selected


def top_k(problem, k):
    r"""Classic Top-k: the ``k`` most relevant experts, whatever their cost.

    Parameters
    ----------
    problem : SelectionProblem
        Batch of P1 instances, relevance and cost ``[..., K]``.
    k : int
        Experts per instance, ``1 <= k <= K``. ``k > D`` is allowed but gives infeasible sets.

    Output
    ------
    result : SelectionResult
        ``selected [..., K]`` with exactly ``k`` experts (relevance ties: the cheaper one),
        ``feasible [...]`` against the requirement and ``D``, ``nodes = 0``.

    Example
    -------
    >>> from dmoe.scheduler import SelectionProblem, top_k
    >>> r = top_k(SelectionProblem([0.5, 0.3, 0.2], [3.0, 1.0, 1.0], 2, importance=0.9), k=1)
    >>> r.selected, bool(r.feasible)
    (array([ True, False, False]), False)
    """
    start_time = time.perf_counter()
    _check_problem(problem)
    num_experts = problem.num_experts
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or not (
            1 <= k <= num_experts):
        raise ValueError(f"k must be an integer in [1, K = {num_experts}], got {k!r}")
    relevance, cost, _, _ = problem._flat()
    order = np.lexsort((cost, -relevance), axis=1)
    selected = np.zeros(relevance.shape, dtype=bool)
    np.put_along_axis(selected, order[:, :int(k)], True, axis=1)
    nodes = np.zeros(relevance.shape[0], dtype=np.int64)
    return _finish(problem, selected, None, nodes, start_time, f"top_{int(k)}", exact=False)


def channel_only(problem):
    r"""Channel-only selection: cheapest experts first until the requirement is met (at most D).

    Experts are taken in ascending cost (ties: more relevant first) without looking at relevance
    otherwise; the scheme stops when the relevance requirement is met or D experts are taken.

    Parameters
    ----------
    problem : SelectionProblem
        Batch of P1 instances, relevance and cost ``[..., K]``.

    Output
    ------
    result : SelectionResult
        ``selected [..., K]``; ``feasible = False`` where D cheapest experts miss the requirement.

    Example
    -------
    >>> from dmoe.scheduler import SelectionProblem, channel_only
    >>> r = channel_only(SelectionProblem([0.5, 0.3, 0.2], [3.0, 1.0, 1.0], 2, importance=0.9))
    >>> r.selected, bool(r.feasible)
    (array([False,  True,  True]), False)
    """
    start_time = time.perf_counter()
    _check_problem(problem)
    relevance, cost, _, _ = problem._flat()
    selected = _take_in_order(problem, np.lexsort((-relevance, cost), axis=1))
    nodes = np.zeros(relevance.shape[0], dtype=np.int64)
    return _finish(problem, selected, None, nodes, start_time, "channel_only", exact=False)


def random_selection(problem, rng):
    r"""Random selection: experts in a uniformly random order until the requirement is met (at most D).

    Parameters
    ----------
    problem : SelectionProblem
        Batch of P1 instances, relevance and cost ``[..., K]``.
    rng : numpy.random.Generator or int
        Source of randomness, or a seed for ``numpy.random.default_rng``.

    Output
    ------
    result : SelectionResult
        ``selected [..., K]``; ``feasible = False`` where the D drawn experts miss the requirement.

    Example
    -------
    >>> from dmoe.scheduler import SelectionProblem, random_selection
    >>> p = SelectionProblem([0.5, 0.3, 0.2], [3.0, 1.0, 1.0], 2, importance=0.0)
    >>> int(random_selection(p, rng=0).num_selected)
    1
    """
    start_time = time.perf_counter()
    _check_problem(problem)
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, (np.random.Generator,
                                                                   numbers.Integral)):
        raise TypeError(f"rng must be a numpy.random.Generator or an integer seed, got {rng!r}")
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))
    relevance, _, _, _ = problem._flat()
    order = np.argsort(generator.random(relevance.shape), axis=1)
    selected = _take_in_order(problem, order)
    nodes = np.zeros(relevance.shape[0], dtype=np.int64)
    return _finish(problem, selected, None, nodes, start_time, "random", exact=False)


def weighted_sum(problem, lam):
    r"""Weighted-sum rule: minimise ``sum_k x_k (lam c~_k - (1 - lam) g_k)`` with ``1 <= |S| <= D``.

    Costs are normalised per instance, ``c~ = cost / max(cost)`` (all-zero costs stay 0);
    relevance is used as given. The rule takes every expert with a negative score, the D most
    negative at most, or the single smallest score if none is negative. It ignores the relevance
    requirement, which is then only checked.

    Parameters
    ----------
    problem : SelectionProblem
        Batch of P1 instances, relevance and cost ``[..., K]``.
    lam : float
        Weight of the cost, in ``[0, 1]``: ``0`` is Top-D by relevance, ``1`` the cheapest expert.

    Output
    ------
    result : SelectionResult
        ``selected [..., K]``; ``feasible = False`` where the set misses the requirement.

    Example
    -------
    >>> from dmoe.scheduler import SelectionProblem, weighted_sum
    >>> r = weighted_sum(SelectionProblem([0.5, 0.3, 0.2], [3.0, 1.0, 1.0], 2, importance=0.9),
    ...                  lam=0.0)
    >>> r.selected
    array([ True,  True, False])
    """
    start_time = time.perf_counter()
    _check_problem(problem)
    if isinstance(lam, (bool, np.bool_)) or not isinstance(lam, numbers.Real) or not (
            0.0 <= lam <= 1.0):
        raise ValueError(f"lam must be a number in [0, 1], got {lam!r}")
    relevance, cost, _, _ = problem._flat()
    largest = cost.max(axis=1, keepdims=True)
    normalised = np.divide(cost, largest, out=np.zeros_like(cost), where=largest > 0)
    score = lam * normalised - (1.0 - lam) * relevance
    order = np.lexsort((cost, score), axis=1)
    ranked = np.take_along_axis(score, order, axis=1)
    count = np.clip(np.count_nonzero(ranked < 0, axis=1), 1, problem.effective_max_experts)
    chosen = np.arange(cost.shape[1])[None, :] < count[:, None]
    selected = np.zeros_like(chosen)
    np.put_along_axis(selected, order, chosen, axis=1)
    nodes = np.zeros(cost.shape[0], dtype=np.int64)
    return _finish(problem, selected, None, nodes, start_time, "weighted_sum", exact=False)


def wlr(problem, latency=None):
    r"""WDMoE-style weight-to-latency ratio: highest ``relevance / latency`` first.

    Experts are ranked by relevance divided by their expected link latency and taken in that
    order until the relevance requirement is met, at most D. Zero latency ranks first among
    experts with positive relevance; zero relevance ranks last.

    Parameters
    ----------
    problem : SelectionProblem
        Batch of P1 instances, relevance and cost ``[..., K]``.
    latency : [..., K], float, optional
        Expected latency of every expert's link (s), ``>= 0`` and finite, broadcast to the
        problem's ``[..., K]``. Default: the problem's ``cost``.

    Output
    ------
    result : SelectionResult
        ``selected [..., K]``; ``feasible = False`` where D experts in this order miss the
        requirement.

    Example
    -------
    >>> from dmoe.scheduler import SelectionProblem, wlr
    >>> p = SelectionProblem([0.5, 0.3, 0.2], [3.0, 1.0, 1.0], 2, importance=0.9)
    >>> wlr(p, latency=[1.0, 1.0, 1.0]).selected
    array([ True,  True, False])
    """
    start_time = time.perf_counter()
    _check_problem(problem)
    relevance, cost, _, _ = problem._flat()
    if latency is None:
        latency = cost
    else:
        latency = np.asarray(latency, dtype=np.float64)
        full_shape = problem.batch_shape + (problem.num_experts,)
        try:
            latency = np.broadcast_to(latency, full_shape).reshape(cost.shape)
        except ValueError:
            raise ValueError(f"latency must broadcast to the problem's shape {full_shape}, "
                             f"got {latency.shape}") from None
        if not np.all(np.isfinite(latency)) or np.any(latency < 0):
            raise ValueError("latency must be finite and >= 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(relevance > 0, relevance / latency, 0.0)   # g > 0, latency 0 -> inf
    order = np.lexsort((-relevance, -ratio), axis=1)
    selected = _take_in_order(problem, order)
    nodes = np.zeros(cost.shape[0], dtype=np.int64)
    return _finish(problem, selected, None, nodes, start_time, "wlr", exact=False)

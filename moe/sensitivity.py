r"""How much each MoE layer's expert choice matters, measured on a model's test split.

Works on any :class:`~dmoe.moe.MoEProtocol` model with activations (``docs/moe.md``), numpy
only apart from the model's calls.

- :func:`layer_sensitivity`: per layer, the accuracy lost when only that layer's experts are cut
  back from the top-D set to the cheapest set meeting a lower relevance requirement.
- :func:`auto_layer_importance`: layer-wise importance factors rho_l from a sensitivity, with
  their mean equal to a homogeneous rho (the ``layer_importance = "auto"`` of a study).
- :func:`routing_concentration`: per layer, how much the top-1 expert tells about the domain.
"""

import inspect
import itertools

import numpy as np

from dmoe.scheduler import top_d_mask

__all__ = ["layer_sensitivity", "auto_layer_importance", "cheapest_covering_set",
           "routing_concentration"]


def cheapest_covering_set(relevance, cost, importance, max_experts):
    r"""Cheapest set of at most ``max_experts`` experts whose relevance reaches the requirement.

    Exhaustive over all sets of 1 .. D experts (the exact optimum of P1 in MODEL.md, for small K):
    minimise ``sum_k x_k c_k`` subject to ``sum_k x_k g_k >= rho * (sum of the D largest g_k)``,
    ``1 <= |S| <= D``. Always feasible for ``rho <= 1`` (the top-D set meets it).

    Input
    -----
    relevance : [T, K], float
    cost : [T, K], float, non-negative
    importance : float, in [0, 1]
        rho.
    max_experts : int
        D, in [1, K].

    Output
    ------
    selected : [T, K], bool
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if relevance.ndim != 2 or cost.shape != relevance.shape:
        raise ValueError(f"relevance and cost must have the same shape [T, K], got "
                         f"{relevance.shape} and {cost.shape}")
    num_experts = relevance.shape[1]
    if not 1 <= max_experts <= num_experts:
        raise ValueError(f"max_experts must lie in [1, {num_experts}], got {max_experts!r}")
    if not 0.0 <= importance <= 1.0:
        raise ValueError(f"importance must lie in [0, 1], got {importance!r}")
    sets = [s for size in range(1, max_experts + 1)
            for s in itertools.combinations(range(num_experts), size)]
    member = np.zeros((len(sets), num_experts))
    for index, members in enumerate(sets):
        member[index, list(members)] = 1.0
    top = -np.sort(-relevance, axis=1)[:, :max_experts].sum(axis=1, keepdims=True)
    selected = np.zeros(relevance.shape, bool)
    for start in range(0, len(relevance), 4096):  # bounded memory: [chunk, sets]
        rows = slice(start, start + 4096)
        mass, total = relevance[rows] @ member.T, cost[rows] @ member.T
        # A relative tolerance so that the top-D set itself always counts as feasible.
        feasible = mass >= importance * top[rows] * (1 - 1e-12)
        selected[rows] = member[np.argmin(np.where(feasible, total, np.inf), axis=1)] > 0
    return selected


def _top_rule(model, max_experts):
    return lambda layer, relevance: top_d_mask(relevance, max_experts)


def _outputs(model, layer, tokens, selected):
    """Expert outputs, only the selected pairs where the model can (``selected=`` keyword)."""
    if "selected" in inspect.signature(model.expert_outputs).parameters:
        return model.expert_outputs(layer, tokens, selected)
    return model.expert_outputs(layer, tokens)


def _accuracy(counts):
    correct, total = counts["accuracy"]
    return correct / total if total else float("nan")


def layer_sensitivity(model, x=None, y=None, importance=0.0, max_experts=2, seed=0):
    r"""Accuracy lost when only one layer's expert sets are cut back, per layer.

    Definition (``docs/moe.md``, "Layer sensitivity"): with every layer on its top-D set the
    model scores ``a``. For layer l, every token at layer l instead gets the cheapest set of at
    most D experts whose relevance reaches ``importance`` x (its top-D relevance), under costs
    drawn i.i.d. ``Exp(1)`` per token and expert (what DES picks under random channels); every
    other layer keeps its top-D set. That scores ``a_l``, and ``s_l = a - a_l``. With the default
    ``importance = 0`` the cut is one expert drawn by the costs, i.e. uniformly at random.

    Input
    -----
    model : dmoe.moe.MoEProtocol
        With activations (``has_activations``).
    x, y : test inputs and targets, or None for ``model.test_data()``
    importance : float, in [0, 1]
        rho of the cut-back layer.
    max_experts : int
        D.
    seed : int
        Seed of the costs.

    Output
    ------
    sensitivity : [L], float64
        ``s_l`` in accuracy points (fractions): positive where cutting layer l costs accuracy.
    """
    if not getattr(model, "has_activations", False):
        raise ValueError("model must have activations (has_activations): a gate trace has no "
                         "accuracy to lose")
    if x is None:
        x, y = model.test_data()
    rng = np.random.default_rng([seed, 17])
    num_layers = model.num_layers

    def step(layer, state, rule):
        tokens, relevance = model.route(layer, state)
        selected = rule(layer, relevance)
        return model.combine(layer, state, _outputs(model, layer, tokens, selected), selected)

    top = _top_rule(model, max_experts)
    # States entering each layer under top-D everywhere (shared by every cut below).
    states = [model.embed(x)]
    for layer in range(num_layers):
        states.append(step(layer, states[-1], top))
    reference = _accuracy(model.evaluate(states[-1], y))

    def cut(layer, relevance):
        cost = rng.exponential(size=relevance.shape)
        return cheapest_covering_set(relevance, cost, importance, max_experts)

    sensitivity = np.zeros(num_layers)
    for layer in range(num_layers):
        state = step(layer, states[layer], cut)
        for later in range(layer + 1, num_layers):
            state = step(later, state, top)
        sensitivity[layer] = reference - _accuracy(model.evaluate(state, y))
    return sensitivity


def auto_layer_importance(sensitivity, importance, floor=0.1):
    r"""Layer-wise importance factors from a sensitivity, at the budget of a homogeneous rho.

    ``rho_l = min(1, c * w_l)`` with ``w_l = max(s_l, 0) + floor * mean_j max(s_j, 0)`` (every
    layer keeps some weight; all-equal weights when no layer is sensitive), and ``c`` chosen so
    that ``mean_l rho_l = importance``: the mean relevance requirement equals that of the
    homogeneous scheme at ``importance``. Layers that lose more accuracy when cut get a higher
    requirement; layers capped at 1 hand their excess to the others.

    Input
    -----
    sensitivity : [L], float
    importance : float, in [0, 1]
        The homogeneous rho to match.
    floor : float, >= 0
        Weight every layer keeps, relative to the mean sensitivity.

    Output
    ------
    rho : [L], float64, in [0, 1], ``mean(rho) == importance`` (to 1e-12)
    """
    sensitivity = np.asarray(sensitivity, dtype=np.float64)
    if sensitivity.ndim != 1 or not len(sensitivity) or not np.all(np.isfinite(sensitivity)):
        raise ValueError(f"sensitivity must be a finite [L] array, got {sensitivity!r}")
    if not 0.0 <= importance <= 1.0:
        raise ValueError(f"importance must lie in [0, 1], got {importance!r}")
    if not floor >= 0.0:
        raise ValueError(f"floor must be >= 0, got {floor!r}")
    positive = np.maximum(sensitivity, 0.0)
    weights = positive + floor * positive.mean()
    if not np.any(weights > 0):
        weights = np.ones_like(sensitivity)
    if importance >= 1.0 or importance <= 0.0:
        return np.full_like(weights, float(importance))
    weights = weights / weights.max()   # scale-free (sensitivities may be tiny)
    if not np.all(weights > 0):  # floor = 0 with some insensitive layers: they may still need rho
        weights = np.maximum(weights, 1e-9)
    low, high = 0.0, 1.0 / weights.min()     # at c = high every layer is capped at 1
    for _ in range(200):
        middle = 0.5 * (low + high)
        if np.minimum(1.0, middle * weights).mean() < importance:
            low = middle
        else:
            high = middle
    rho = np.minimum(1.0, high * weights)
    # Exact budget: the bisection leaves at most ~1e-16; rescale the uncapped layers to match.
    free = rho < 1.0
    if np.any(free):
        rho[free] *= (importance * len(rho) - np.sum(~free)) / rho[free].sum()
    return np.clip(rho, 0.0, 1.0)


def routing_concentration(model, x=None, y=None, max_experts=2):
    r"""Per layer, how concentrated each domain's routing is, under top-D routing.

    Input
    -----
    model : a step-interface model whose state has ``domain`` (the ``multidomain`` model)
    x, y : test inputs and targets, or None for ``model.test_data()``
    max_experts : int
        D of the routing pass.

    Output
    ------
    stats : dict
        ``mutual_information_bits`` [L]: I(domain; top-1 expert) over all routed positions, in
        bits (at most log2 of the number of domains);
        ``top_share`` [L, num_domains]: share of each domain's positions whose top-1 expert is
        that domain's most used one; ``domains``: names of the columns.
    """
    if x is None:
        x, y = model.test_data()
    state = model.embed(x)
    domain = np.repeat(state.domain, model.tokens_per_example)
    names = [n for n in model.domain_names if np.any(domain == model.domain_names.index(n))]
    ids = [model.domain_names.index(n) for n in names]
    information, share = [], []
    for layer in range(model.num_layers):
        tokens, relevance = model.route(layer, state)
        top1 = np.argmax(relevance, axis=1)
        joint = np.zeros((len(ids), model.num_experts))
        for row, d in enumerate(ids):
            joint[row] = np.bincount(top1[domain == d], minlength=model.num_experts)
        share.append(joint.max(axis=1) / joint.sum(axis=1))
        p = joint / joint.sum()
        outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
        nonzero = p > 0
        information.append(float(np.sum(p[nonzero] * np.log2(p[nonzero] / outer[nonzero]))))
        selected = top_d_mask(relevance, max_experts)
        state = model.combine(layer, state, _outputs(model, layer, tokens, selected), selected)
    return {"mutual_information_bits": np.array(information), "top_share": np.array(share),
            "domains": names}

"""The top-D mask: the D most relevant experts of every token (the reference set of rho)."""

import numpy as np

__all__ = ["top_d_mask"]


def top_d_mask(relevance, d):
    """The ``d`` most relevant experts of every row.

    Parameters
    ----------
    relevance : [..., K], float
    d : int
        In ``[0, K]``.

    Output
    ------
    mask : [..., K], bool
        Exactly ``d`` entries per row; among equal relevances the lower index wins (as
        ``tf.math.top_k``).

    Example
    -------
    >>> top_d_mask(np.array([[0.2, 0.5, 0.3]]), 2)
    array([[False,  True,  True]])
    """
    relevance = np.asarray(relevance)
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) \
            or not 0 <= d <= relevance.shape[-1]:
        raise ValueError(f"d must be an int in [0, {relevance.shape[-1]}], got {d!r}")
    order = np.argsort(-relevance, axis=-1, kind="stable")[..., :d]
    mask = np.zeros(relevance.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask

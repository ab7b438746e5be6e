r"""95 % intervals on the accuracies of a row (Wilson score intervals, ``docs/cosim.md``).

An accuracy is ``correct / total`` over ``total`` scored answers. Its interval is the Wilson
score interval: the ``p`` for which the observed share ``p_hat`` lies within ``z`` standard errors
of ``p``, ``(p_hat - p)^2 = z^2 p (1 - p) / n``:

``centre = (p_hat + z^2 / (2 n)) / (1 + z^2 / n)``,
``half = z / (1 + z^2 / n) * sqrt(p_hat (1 - p_hat) / n + z^2 / (4 n^2))``,

with ``z`` the ``(1 + confidence) / 2`` normal quantile (1.95996 for 95 %). Unlike the normal
(Wald) interval it stays inside [0, 1] and does not collapse to a point at 0 % or 100 %, and its
coverage stays close to the nominal level for the sizes of a study (tens to thousands of tokens).
It treats the ``total`` answers as independent trials; answers that share a sequence are not
quite independent, so for them the interval is somewhat too narrow.
"""

import numpy as np

__all__ = ["wilson_interval", "CONFIDENCE"]

#: Confidence level of the intervals in every row.
CONFIDENCE = 0.95


def _z(confidence):
    if not isinstance(confidence, (float, int)) or isinstance(confidence, bool) \
            or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a float in (0, 1), got {confidence!r}")
    from scipy.special import ndtri
    return float(ndtri(0.5 + 0.5 * confidence))


def wilson_interval(successes, trials, confidence=CONFIDENCE):
    """Wilson score interval of a binomial proportion (formula in the module docstring).

    Input
    -----
    successes : [...], int or float
        Successes, ``0 <= successes <= trials``.
    trials : [...], int or float, broadcastable with ``successes``
        Trials, ``>= 0``; where 0 the interval is NaN.
    confidence : float
        Confidence level in (0, 1), default 0.95.

    Output
    ------
    low, high : [...], float64
        ``0 <= low <= successes / trials <= high <= 1``.

    Example
    -------
    >>> low, high = wilson_interval(8, 10)
    >>> round(float(low), 4), round(float(high), 4)
    (0.4902, 0.9433)
    """
    z = _z(confidence)
    successes = np.asarray(successes, dtype=np.float64)
    trials = np.asarray(trials, dtype=np.float64)
    if np.any(~np.isfinite(successes)) or np.any(~np.isfinite(trials)):
        raise ValueError("successes and trials must be finite")
    if np.any(trials < 0) or np.any(successes < 0) or np.any(successes > trials):
        raise ValueError("successes and trials must satisfy 0 <= successes <= trials")
    n = np.where(trials > 0, trials, np.nan)
    share = successes / n
    denominator = 1.0 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z / denominator * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    # At p_hat = 0 (1) the lower (upper) root is exactly 0 (1); rounding must not move it.
    low = np.where(successes == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(successes == trials, 1.0, np.clip(centre + half, 0.0, 1.0))
    return np.where(trials > 0, low, np.nan), np.where(trials > 0, high, np.nan)

r"""Highest-MCS selection without evaluating every BLER curve (the body of ``select_mcs``).

Choosing the highest MCS whose BLER meets the target by interpolating every candidate's BLER
curve at every SNR needs ``[num_candidates, *shape]`` float64 temporaries (0.9 GB for a
4096-token point of the default study) and was the co-simulation's main cost at large batches
(``docs/scaling.md``). The same answer needs far less work:

An SNR falls in one segment ``[grid[l], grid[l + 1]]`` of the table's SNR grid, where each BLER
is the same linear interpolation ``c[l] * (1 - frac) + c[l + 1] * frac``. Per segment, every
candidate is classified once: *always* meets the target there (both ends below
``target - 1e-9``; rounding cannot lift the interpolation above the target), *never* (both
ends above ``target + 1e-9``), or *depends*. The chosen MCS is the highest of the segment's
highest "always" candidate and the "depends" candidates above it (usually none to three) whose
interpolated BLER, computed with exactly ``bler_awgn``'s float64 operations, meets the target.
So the result is identical, bit for bit, to that brute force (``tests/test_scale_mcs_select.py``
checks it against ``bler_awgn`` of every MCS, ties at table values included).
"""

import functools

import numpy as np

from ._mcs import DEFAULT_CODE_BLOCK_SIZE, _check_table, _pdsch_bler_tables, mcs_table

__all__ = ["select_mcs_fast"]

# Far above the rounding error of one interpolation of values in [0, 1] (~1e-16).
_MARGIN = 1e-9


@functools.lru_cache(maxsize=32)
def _segments(table, bler_target, code_block_size):
    bler, snr_grid, cbs_grid = _pdsch_bler_tables()
    cbs = int(np.argmin(np.abs(cbs_grid - code_block_size)))
    curves = np.nan_to_num(bler[table - 1, :, cbs, :], nan=1.0).astype(np.float64)
    info = mcs_table(table)
    candidates = info.index[info.has_bler_table]             # ascending MCS indices
    ends = curves[candidates]                                 # [C, S]
    top = np.maximum(ends[:, :-1], ends[:, 1:])               # [C, S - 1]
    bottom = np.minimum(ends[:, :-1], ends[:, 1:])
    always = top < bler_target - _MARGIN
    depends = ~always & ~(bottom > bler_target + _MARGIN)
    rank = np.arange(len(candidates))[:, None]
    best_always = np.where(always, rank, -1).max(axis=0)      # [S - 1], -1: none
    above = depends & (rank > best_always[None, :])
    width = max(1, int(above.sum(axis=0).max()))
    depends_rank = np.full((above.shape[1], width), -1, dtype=np.int64)
    for segment in np.nonzero(above.any(axis=0))[0]:
        ranks = np.nonzero(above[:, segment])[0]
        depends_rank[segment, :len(ranks)] = ranks
    # Flat look-up tables (1-D takes are several times faster than 2-D fancy indexing):
    # values at both ends of every segment, per candidate rank and per "depends" column.
    num_segments = curves.shape[1] - 1
    ranked = curves[candidates]                                       # [C, S]
    low_end = np.ascontiguousarray(ranked[:, :-1]).ravel()            # [C x (S - 1)]
    high_end = np.ascontiguousarray(ranked[:, 1:]).ravel()
    safe = np.maximum(depends_rank, 0)
    segment_index = np.arange(num_segments)[:, None]
    depends_low = ranked[safe, segment_index]                         # [S - 1, width]
    depends_high = ranked[safe, segment_index + 1]
    has_depends = depends_rank[:, 0] >= 0                             # [S - 1]
    for array in (curves, candidates, best_always, depends_rank, low_end, high_end,
                  depends_low, depends_high, has_depends):
        array.setflags(write=False)
    return (curves, candidates, best_always, depends_rank, snr_grid, low_end, high_end,
            depends_low, depends_high, has_depends)


def select_mcs_fast(snr_db, table=1, bler_target=0.1, code_block_size=DEFAULT_CODE_BLOCK_SIZE):
    r"""Highest MCS whose AWGN BLER at ``snr_db`` is at most ``bler_target``.

    The same contract (parameters, outputs, -1 where no MCS qualifies) as
    :func:`dmoe.phy._mcs.select_mcs`, which calls it; bit-for-bit the same choice as evaluating
    every BLER curve, from precomputed per-segment candidate classes.

    Example
    -------
    >>> mcs, bler = select_mcs_fast([-10.0, 25.0])
    >>> mcs.tolist()
    [-1, 28]
    """
    if not 0.0 < bler_target < 1.0:
        raise ValueError(f"bler_target must be in (0, 1), got {bler_target!r}")
    _check_table(table)
    if not code_block_size > 0:
        raise ValueError(f"code_block_size must be > 0 bits, got {code_block_size!r}")
    (_, candidates, best_always, depends_rank, snr_grid, low_end, high_end, depends_low,
     depends_high, has_depends) = _segments(int(table), float(bler_target), code_block_size)
    num_segments = len(snr_grid) - 1
    # Position on the grid exactly as bler_awgn computes it (clip maps -inf to 0 and +inf to
    # the top as nan_to_num followed by clip does; NaN is set to 0 as nan_to_num does).
    shape = np.shape(snr_db)
    position = np.asarray(snr_db, dtype=np.float64).reshape(-1) - snr_grid[0]
    position /= snr_grid[1] - snr_grid[0]
    position = np.clip(position, 0.0, len(snr_grid) - 1.0, out=position)
    nan = np.isnan(position)
    if nan.any():
        position[nan] = 0.0
    # position >= 0, so truncation is floor.
    lower = np.minimum(position.astype(np.int64), num_segments - 1)
    frac = position - lower
    del position, nan

    best = np.take(best_always, lower)
    # Only SNRs in a segment with "depends" candidates can move above the "always" one.
    where = np.flatnonzero(np.take(has_depends, lower))
    if where.size:
        sub_lower = lower[where]
        sub_frac = frac[where]
        sub_best = best[where]
        for column in range(depends_rank.shape[1]):
            rank = depends_rank[sub_lower, column]
            value = (depends_low[sub_lower, column] * (1.0 - sub_frac)
                     + depends_high[sub_lower, column] * sub_frac)
            sub_best = np.where((rank > sub_best) & (value <= bler_target), rank, sub_best)
        best[where] = sub_best
    found = best >= 0
    flat = np.maximum(best, 0) * num_segments + lower
    chosen = np.take(low_end, flat) * (1.0 - frac) + np.take(high_end, flat) * frac
    mcs = np.where(found, np.take(candidates, np.maximum(best, 0)), -1).astype(np.int32)
    return mcs.reshape(shape), np.where(found, chosen, 1.0).reshape(shape)

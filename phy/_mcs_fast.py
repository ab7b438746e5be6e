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
Segments with an "always" candidate and no "depends" one (about 90 %) take their MCS and its
two BLER end points from per-segment tables; the rest take the general path. The input is
processed in blocks of :data:`_BLOCK` elements so that the temporaries stay in the CPU caches.
So the result is identical, bit for bit, to that brute force (``tests/test_scale_mcs_select.py``
checks it against ``bler_awgn`` of every MCS, ties at table values included).
"""

import collections
import functools

import numpy as np

from ._mcs import (DEFAULT_CODE_BLOCK_SIZE, _check_table, _pdsch_bler_tables, code_block_index,
                   mcs_table)

__all__ = ["select_mcs_fast"]

# Far above the rounding error of one interpolation of values in [0, 1] (~1e-16).
_MARGIN = 1e-9


@functools.lru_cache(maxsize=32)
def _segments(table, bler_target, code_block_size):
    bler, snr_grid, cbs_grid = _pdsch_bler_tables()
    cbs = int(code_block_index(code_block_size, cbs_grid))
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
    # Per-segment look-up tables of the "always" choice (1-D takes are several times faster
    # than 2-D fancy indexing): its MCS (-1: none) and BLER at both ends of the segment.
    # SNRs in a segment with "depends" candidates or without an "always" one take the
    # general path (values of the "depends" candidates at both ends, per column).
    num_segments = curves.shape[1] - 1
    ranked = curves[candidates]                                       # [C, S]
    segment_index = np.arange(num_segments)
    safe_always = np.maximum(best_always, 0)
    always_mcs = np.where(best_always >= 0, candidates[safe_always], -1).astype(np.int32)
    always_low = ranked[safe_always, segment_index]                   # [S - 1]
    always_high = ranked[safe_always, segment_index + 1]
    safe = np.maximum(depends_rank, 0)
    depends_low = ranked[safe, segment_index[:, None]]                # [S - 1, width]
    depends_high = ranked[safe, segment_index[:, None] + 1]
    general = (depends_rank[:, 0] >= 0) | (best_always < 0)           # [S - 1]
    tables = _Tables(candidates=candidates, best_always=best_always, depends_rank=depends_rank,
                     snr_grid=snr_grid, ranked=ranked, always_mcs=always_mcs,
                     always_low=always_low, always_high=always_high, depends_low=depends_low,
                     depends_high=depends_high, general=general)
    for array in tables:
        if isinstance(array, np.ndarray):
            array.setflags(write=False)
    return tables


_Tables = collections.namedtuple("_Tables", [
    "candidates", "best_always", "depends_rank", "snr_grid", "ranked", "always_mcs",
    "always_low", "always_high", "depends_low", "depends_high", "general"])

# Elements per block: the dozen temporaries of one block stay in the CPU caches.
_BLOCK = 1 << 15


def _select_block(snr_db, bler_target, t, mcs_out, bler_out):
    """select_mcs_fast on a 1-D float64 block, written into mcs_out and bler_out."""
    num_segments = len(t.snr_grid) - 1
    # Position on the grid exactly as bler_awgn computes it (clip maps -inf to 0 and +inf to
    # the top as nan_to_num followed by clip does; NaN is set to 0 as nan_to_num does).
    position = snr_db - t.snr_grid[0]
    position /= t.snr_grid[1] - t.snr_grid[0]
    np.clip(position, 0.0, len(t.snr_grid) - 1.0, out=position)
    nan = np.isnan(position)
    if nan.any():
        position[nan] = 0.0
    # position >= 0, so truncation is floor.
    lower = position.astype(np.int64)
    np.minimum(lower, num_segments - 1, out=lower)
    frac = position - lower
    # Segments whose choice is their "always" candidate: its MCS and its interpolated BLER.
    np.take(t.always_mcs, lower, out=mcs_out)
    np.multiply(np.take(t.always_low, lower), 1.0 - frac, out=bler_out)
    bler_out += np.take(t.always_high, lower) * frac
    # The others: the "depends" candidates above the "always" one whose interpolated BLER,
    # computed with exactly bler_awgn's operations, meets the target; 1.0 where none.
    where = np.flatnonzero(np.take(t.general, lower))
    if where.size:
        sub_lower = lower[where]
        sub_frac = frac[where]
        best = t.best_always[sub_lower]
        for column in range(t.depends_rank.shape[1]):
            rank = t.depends_rank[sub_lower, column]
            value = (t.depends_low[sub_lower, column] * (1.0 - sub_frac)
                     + t.depends_high[sub_lower, column] * sub_frac)
            best = np.where((rank > best) & (value <= bler_target), rank, best)
        found = best >= 0
        safe = np.maximum(best, 0)
        chosen = (t.ranked[safe, sub_lower] * (1.0 - sub_frac)
                  + t.ranked[safe, sub_lower + 1] * sub_frac)
        mcs_out[where] = np.where(found, t.candidates[safe], -1)
        bler_out[where] = np.where(found, chosen, 1.0)


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
    tables = _segments(int(table), float(bler_target), code_block_size)
    shape = np.shape(snr_db)
    snr_db = np.asarray(snr_db, dtype=np.float64).reshape(-1)
    mcs = np.empty(snr_db.shape, dtype=np.int32)
    bler = np.empty(snr_db.shape, dtype=np.float64)
    for start in range(0, len(snr_db), _BLOCK):
        block = slice(start, start + _BLOCK)
        _select_block(snr_db[block], bler_target, tables, mcs[block], bler[block])
    return mcs.reshape(shape), bler.reshape(shape)

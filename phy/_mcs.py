"""5G NR MCS tables (TS 38.214) and AWGN BLER look-up from Sionna's PHYAbstraction tables.

Shared by the ``mcs`` planning rate (:mod:`dmoe.phy.rates`) and link adaptation in
:mod:`dmoe.phy.link_simulator`. ``docs/phy.md``, "Rate models", describes the look-up.
"""

from dataclasses import dataclass
import functools
import os

import numpy as np
import sionna.sys
from sionna.phy.nr.utils import decode_mcs_index
from sionna.sys import PHYAbstraction

__all__ = ["MCSTable", "mcs_table", "bler_awgn", "select_mcs", "MCS_TABLES",
           "DEFAULT_CODE_BLOCK_SIZE"]

#: TS 38.214 PDSCH MCS tables covered by Sionna's BLER tables used here.
MCS_TABLES = (1, 2)

#: Code block size (bits) of the planning look-up: the largest one Sionna's BLER tables were
#: simulated at (24, 100, 500, 1000, 2000); larger blocks are extrapolated by Sionna.
DEFAULT_CODE_BLOCK_SIZE = 2000

_NUM_MCS = 29  # indices 0..28


def _check_table(table):
    if table not in MCS_TABLES:
        raise ValueError(f"table must be one of {MCS_TABLES} (TS 38.214 PDSCH MCS table), "
                         f"got {table!r}")


#: Last SNR (dB) of the tabulated grid after extension: Sionna interpolates its tables on
#: -5..30 dB; the high-SNR tail (:func:`_extrapolate_tail`) is written out to here, where every
#: BLER is 0 (look-ups clamp beyond, so BLER stays 0 above).
SNR_GRID_END_DB = 50.0

#: Least tail slope (decades of BLER per dB at the table's last SNR) of the extrapolation.
MIN_TAIL_SLOPE_DB = 0.1


def _extrapolate_tail(curves, grid, last_db, previous_db):
    r"""Replace Sionna's constant continuation beyond the last simulated SNR by a decaying tail.

    Sionna simulated its BLER tables up to ``last_db`` (20 dB for PDSCH table 1, 25 dB for
    table 2) and its interpolation holds the last value constant above, an error floor no code
    has. Above ``s_L = last_db`` the BLER follows the high-SNR form of a coded block,
    ``BLER ~ exp(-c * SINR)`` (union/Chernoff bound, SINR linear):

    ``log10 BLER(s) = log10 BLER(s_L) - k * (10 / ln 10) * (10**((s - s_L) / 10) - 1)``

    which leaves ``s_L`` with the slope ``k`` (decades per dB) of the last simulated segment
    ``[previous_db, last_db]`` (at least :data:`MIN_TAIL_SLOPE_DB`) and falls ever faster
    (e.g. k = 0.4 dec/dB: 16 decades 10 dB further). A curve already 0 at ``s_L`` stays 0.

    Input
    -----
    curves : [..., snr], float64, BLER on ``grid`` (Sionna's interpolation, NaN: no table)
    grid : [snr], float64, SNR grid in dB
    last_db, previous_db : float, the last two simulated SNRs of the table

    Output
    ------
    curves : [..., snr], float64, with the tail above ``last_db`` replaced
    """
    step = grid[1] - grid[0]
    last = int(round((last_db - grid[0]) / step))
    # First grid point inside the last simulated segment (the interpolation is log-linear
    # there, so the two points give the segment's slope exactly).
    previous = int(np.ceil((previous_db - grid[0]) / step - 1e-6))
    b_last, b_previous = curves[..., last], curves[..., previous]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (np.log10(b_previous) - np.log10(b_last)) / (grid[last] - grid[previous])
    slope = np.where(np.isfinite(slope), np.maximum(slope, MIN_TAIL_SLOPE_DB), MIN_TAIL_SLOPE_DB)
    excess = 10.0 / np.log(10.0) * (10.0 ** ((grid[last + 1:] - grid[last]) / 10.0) - 1.0)
    with np.errstate(divide="ignore"):
        tail = np.log10(b_last)[..., None] - slope[..., None] * excess
    curves = curves.copy()
    curves[..., last + 1:] = np.where(b_last[..., None] > 0, 10.0 ** tail, 0.0)
    return curves


@functools.lru_cache(maxsize=1)
def _pdsch_bler_tables():
    """Sionna's interpolated PDSCH BLER tables, extended to high SNR and made monotone.

    Sionna's table (0.1 dB x 100-bit grid, -5..30 dB) is extended to
    :data:`SNR_GRID_END_DB` on the same 0.1 dB grid, its constant continuation beyond the last
    simulated SNR is replaced by :func:`_extrapolate_tail`, every curve is made non-increasing
    in SNR (running minimum: removes the <= 2e-4 wiggles of Sionna's spline) and its last grid
    point is 0. ``docs/phy.md``, "BLER tables beyond Sionna's SNR range".

    Returns (bler [table, mcs, cbs, snr] float32 with NaN where an MCS has no table,
    snr_db grid [snr], code-block-size grid [cbs]).
    """
    folder = os.path.join(os.path.dirname(sionna.sys.__file__), "bler_tables")
    files = [os.path.join(folder, f"PDSCH_table{t}.json") for t in MCS_TABLES]
    abstraction = PHYAbstraction(load_bler_tables_from=files)
    # Axis 0 is the category (0 PUSCH, 1 PDSCH), axis 1 the table index - 1.
    bler = abstraction.bler_table_interp.numpy()[1, :len(MCS_TABLES)].astype(np.float64)
    bler[~np.isfinite(bler)] = np.nan
    snr_db = np.asarray(abstraction._snr_dbs_interp, dtype=np.float64)  # pylint: disable=protected-access
    cbs = np.asarray(abstraction._cbs_interp, dtype=np.float64)  # pylint: disable=protected-access
    step = snr_db[1] - snr_db[0]
    grid = snr_db[0] + step * np.arange(int(round((SNR_GRID_END_DB - snr_db[0]) / step)) + 1)
    extended = np.concatenate(
        [bler, np.repeat(bler[..., -1:], len(grid) - len(snr_db), axis=-1)], axis=-1)
    extended = np.clip(extended, 0.0, 1.0)
    raw = abstraction.bler_table["category"][1]["index"]
    for t, table in enumerate(MCS_TABLES):
        for mcs, entry in raw[table]["MCS"].items():
            simulated = np.sort(np.asarray(entry["SNR_db"], dtype=np.float64))
            extended[t, int(mcs)] = _extrapolate_tail(extended[t, int(mcs)], grid,
                                                      simulated[-1], simulated[-2])
    extended = np.fmin.accumulate(extended, axis=-1)   # NaN rows (no table) stay NaN
    extended[..., -1] = np.where(np.isnan(extended[..., -1]), np.nan, 0.0)
    return extended.astype(np.float32), grid, cbs


@dataclass(frozen=True)
class MCSTable:
    """One TS 38.214 PDSCH MCS table.

    Parameters
    ----------
    table : int
        Table number (1: up to 64-QAM, 2: up to 256-QAM).
    index : [num_mcs], int32
        MCS indices 0..28.
    modulation_order : [num_mcs], int32
        Bits per QAM symbol Q_m.
    code_rate : [num_mcs], float64
        Target code rate R.
    spectral_efficiency : [num_mcs], float64
        Q_m x R in bit/s/Hz.
    has_bler_table : [num_mcs], bool
        Whether Sionna ships a BLER table for the index (table 1 lacks MCS 0-2; in table 2
        index 28 is reserved); indices without one are never chosen by :func:`select_mcs`.
    """

    table: int
    index: np.ndarray
    modulation_order: np.ndarray
    code_rate: np.ndarray
    spectral_efficiency: np.ndarray
    has_bler_table: np.ndarray


@functools.lru_cache(maxsize=len(MCS_TABLES))
def mcs_table(table=1):
    """TS 38.214 PDSCH MCS table (from Sionna's ``decode_mcs_index``).

    Parameters
    ----------
    table : int
        1 or 2.

    Output
    ------
    table : MCSTable

    Example
    -------
    >>> t = mcs_table(1)
    >>> int(t.modulation_order[28]), round(float(t.spectral_efficiency[28]), 4)
    (6, 5.5547)
    """
    _check_table(table)
    index = np.arange(_NUM_MCS, dtype=np.int32)
    order, rate = decode_mcs_index(index, table_index=table, is_pusch=False,
                                   check_index_validity=False)
    # Reserved indices (table 2: 28) come back negative; they carry no rate.
    valid = order.numpy() > 0
    order = np.where(valid, order.numpy(), 0).astype(np.int32)
    rate = np.where(valid, rate.numpy(), 0.0).astype(np.float64)
    bler = _pdsch_bler_tables()[0][table - 1]
    has_table = valid & ~np.all(np.isnan(bler), axis=(1, 2))
    for array in (index, order, rate, has_table):
        array.setflags(write=False)
    se = order * rate
    se.setflags(write=False)
    return MCSTable(table=table, index=index, modulation_order=order, code_rate=rate,
                    spectral_efficiency=se, has_bler_table=has_table)


def code_block_index(code_block_size, cbs_grid):
    """Index of the tabulated code-block size nearest to ``code_block_size`` (any shape).

    Halfway between two sizes the smaller one is taken: its BLER is the higher of the two,
    the conservative side. Sizes outside the grid take its first or last entry.
    """
    position = ((np.asarray(code_block_size, dtype=np.float64) - cbs_grid[0])
                / (cbs_grid[1] - cbs_grid[0]))
    return np.clip(np.ceil(position - 0.5), 0, len(cbs_grid) - 1).astype(np.int64)


def interpolate_bler(snr_db, mcs_index, cbs_index, table):
    r"""Code-block BLER of the PDSCH tables: linear in SNR (dB) on the table's grid.

    The one interpolation of the tables (:func:`bler_awgn`, and per TB in the PHY
    abstraction). Clamped outside the grid (-5 dB .. :data:`SNR_GRID_END_DB`; NaN SNRs count as
    the lowest), 1.0 for an MCS without a table.

    Input
    -----
    snr_db : array, float
    mcs_index, cbs_index : array, int, broadcastable against ``snr_db``
        MCS index and code-block-size index (:func:`code_block_index`).
    table : int
        1 or 2.

    Output
    ------
    bler : array, float64, broadcast shape
    """
    bler, snr_grid, _ = _pdsch_bler_tables()
    curves = bler[table - 1]                                      # [mcs, cbs, snr] float32
    position = (np.asarray(snr_db, dtype=np.float64) - snr_grid[0]) / (snr_grid[1] - snr_grid[0])
    position = np.clip(np.nan_to_num(position, nan=0.0, neginf=0.0), 0.0, len(snr_grid) - 1.0)
    lower = np.minimum(np.floor(position).astype(np.int64), len(snr_grid) - 2)
    frac = position - lower
    value = (curves[mcs_index, cbs_index, lower].astype(np.float64) * (1.0 - frac)
             + curves[mcs_index, cbs_index, lower + 1].astype(np.float64) * frac)
    return np.nan_to_num(value, nan=1.0)


def bler_awgn(snr_db, mcs_index, table=1, code_block_size=DEFAULT_CODE_BLOCK_SIZE):
    r"""Block error rate of one code block on AWGN, from Sionna's PHYAbstraction tables.

    Linear interpolation in SNR (dB) on Sionna's 0.1 dB grid, nearest tabulated code block
    size (:func:`interpolate_bler`). The grid runs from -5 dB to :data:`SNR_GRID_END_DB` (clamped outside); above the
    last SNR Sionna simulated (20 dB for table 1, 25 dB for table 2) the BLER follows the
    decaying tail of :func:`_extrapolate_tail` and is 0 at the grid's end, and every curve is
    non-increasing in SNR (``docs/phy.md``, "BLER tables beyond Sionna's SNR range").

    Parameters
    ----------
    snr_db : array_like, float
        SNR in dB (any shape).
    mcs_index : array_like, int
        MCS index 0..28, broadcastable against ``snr_db``.
    table : int
        TS 38.214 PDSCH MCS table, 1 or 2.
    code_block_size : int
        Code block size in bits (Sionna's grid: 24..8424 in steps of 100).

    Output
    ------
    bler : array, float64
        Broadcast shape; 1.0 for an index without a BLER table.

    Example
    -------
    >>> float(bler_awgn(30.0, 10)) < 1e-3, float(bler_awgn(-5.0, 10)) > 0.99
    (True, True)
    """
    _check_table(table)
    mcs_index = np.asarray(mcs_index)
    if not np.issubdtype(mcs_index.dtype, np.integer) or np.any(
            (mcs_index < 0) | (mcs_index >= _NUM_MCS)):
        raise ValueError(f"mcs_index must be integers in [0, {_NUM_MCS - 1}]")
    if not code_block_size > 0:
        raise ValueError(f"code_block_size must be > 0 bits, got {code_block_size!r}")
    cbs = int(code_block_index(code_block_size, _pdsch_bler_tables()[2]))
    return interpolate_bler(snr_db, mcs_index, cbs, table)


def select_mcs(snr_db, table=1, bler_target=0.1, code_block_size=DEFAULT_CODE_BLOCK_SIZE):
    r"""Highest MCS whose AWGN BLER at ``snr_db`` is at most ``bler_target``.

    Parameters
    ----------
    snr_db : array_like, float
        SNR in dB (any shape).
    table : int
        TS 38.214 PDSCH MCS table, 1 or 2.
    bler_target : float
        In (0, 1).
    code_block_size : int
        Code block size in bits of the BLER look-up.

    Output
    ------
    mcs : array, int32, shape of ``snr_db``
        Chosen MCS index, -1 where no MCS meets the target.
    bler : array, float64, shape of ``snr_db``
        BLER of the chosen MCS (1.0 where none).

    Example
    -------
    >>> mcs, bler = select_mcs([-10.0, 25.0])
    >>> mcs.tolist()
    [-1, 28]
    """
    # "Highest MCS" is the highest index (spectral efficiency is non-decreasing in the index up
    # to 0.004 bit/s/Hz at the modulation switches of TS 38.214). The fast path gives, bit for
    # bit, what interpolating every candidate's curve at every SNR gives, without the
    # [num_candidates, *shape] temporaries (docs/scaling.md; tests/test_scale_mcs_select.py).
    from ._mcs_fast import select_mcs_fast
    return select_mcs_fast(snr_db, table, bler_target, code_block_size)

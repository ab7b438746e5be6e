"""PHY abstraction helpers: 5G NR MCS tables, transport-block sizing, resource grid, EESM and BLER.

Everything here is shared by both fidelities of :class:`~dmoe.phy.LinkSimulator`, so that the
abstraction and the bit-true chain size, time and cost a transport block identically
(``docs/phy.md``, "Link realisation").

- MCS: TS 38.214 PDSCH MCS tables via :func:`sionna.phy.nr.utils.decode_mcs_index` (our links
  are plain CP-OFDM without transform precoding, so the PDSCH tables apply to both directions).
- Transport block (TB): the payload of ``B`` bits is carried in the smallest 5G NR TB
  (:func:`sionna.phy.nr.utils.calculate_tb_size`) with ``TBS >= B``; the rest is zero padding.
  The grid has enough resource elements that each code block (CRC included) is coded at no
  more than the MCS's code rate (:func:`segment`).
- Resource grid: slots of 14 OFDM symbols (normal cyclic prefix), one pilot OFDM symbol per
  slot on the link's subcarriers, 13 data symbols.
- BLER: Sionna's EESM (:class:`sionna.sys.EESM`, beta per MCS) and the BLER tables of
  :class:`sionna.sys.PHYAbstraction` (AWGN, LDPC, per code-block size); the TB error rate is
  ``1 - (1 - BLER_cb)**num_cb``.
"""

import functools

import numpy as np
from scipy.special import erfc
from sionna.phy.nr.utils import calculate_tb_size
from sionna.sys import EESM

from . import _mcs

__all__ = []

SYMBOLS_PER_SLOT = 14
PILOT_SYMBOLS_PER_SLOT = 1
DATA_SYMBOLS_PER_SLOT = SYMBOLS_PER_SLOT - PILOT_SYMBOLS_PER_SLOT
NUM_MCS = 29


def ofdm_symbol_duration_s(subcarrier_spacing_hz):
    """Duration of one OFDM symbol incl. its cyclic prefix, in s (normal CP, 5G NR).

    A slot of 14 symbols lasts ``1 ms / 2**mu`` with ``df = 15 kHz * 2**mu``, so the mean symbol
    duration (CP included) is ``1e-3 / (14 * 2**mu)``: 71.4 us at 15 kHz, 35.7 us at 30 kHz.
    """
    mu = np.log2(subcarrier_spacing_hz / 15e3)
    return 1e-3 / (SYMBOLS_PER_SLOT * 2.0 ** mu)


@functools.lru_cache(maxsize=None)
def eesm():
    """The shared Sionna ``EESM`` block (beta per MCS from Sionna's calibrated table)."""
    return EESM()


def mcs_table_arrays(mcs_table):
    """Modulation order, target code rate and BLER-table availability of every MCS index.

    Thin view of :func:`dmoe.phy._mcs.mcs_table`.

    Output
    ------
    bits_per_symbol : [29], int64
        Modulation order Q_m (0 where the index is reserved).
    code_rate : [29], float64
        Target code rate R.
    has_table : [29], bool
        True where Sionna ships a BLER table for (PDSCH, ``mcs_table``, MCS).
    """
    table = _mcs.mcs_table(mcs_table)
    return (table.modulation_order.astype(np.int64), table.code_rate,
            np.asarray(table.has_bler_table))


_SEGMENT_CACHE = {}


def _segment_uncached(payload_bits, bits_per_symbol, code_rate):
    """Vectorised sizing of the TB and grid carrying each payload (see :func:`segment`)."""
    payload_bits = payload_bits.astype(np.int64)
    # 1. TB size: the TS 38.214 TB size of the smallest grid whose TB holds the payload.
    num_re = np.ceil(payload_bits / (bits_per_symbol * code_rate)).astype(np.int64)
    num_re = np.maximum(num_re, 1)
    for _ in range(200):
        tbs, _, _, *_ = calculate_tb_size(bits_per_symbol, code_rate,
                                          num_coded_bits=num_re * bits_per_symbol,
                                          return_cw_length=False)
        tbs = tbs.numpy().astype(np.int64)
        short = tbs < payload_bits
        if not short.any():
            break
        # TB sizes are quantised in steps of ~1.5 %, so grow the grid geometrically.
        num_re = np.where(short, num_re + np.maximum(1, np.ceil(0.01 * num_re)).astype(np.int64),
                          num_re)
    # 2. Code blocks of that TB (they depend on the TB size and R only, not on the grid; any
    # number of coded bits above the TB size will do for the call).
    _, cb_size, num_cb, *_ = calculate_tb_size(
        bits_per_symbol, code_rate, target_tb_size=tbs,
        num_coded_bits=bits_per_symbol * (tbs // bits_per_symbol + 1), return_cw_length=False)
    cb_size = cb_size.numpy().astype(np.int64)
    num_cb = num_cb.numpy().astype(np.int64)
    # 3. Grid: enough resource elements that every code block, CRC bits included, is coded at
    # no more than the MCS's code rate R (the rate of Sionna's BLER tables, always < 0.95, the
    # most Sionna's LDPC encoder accepts). Rate matching gives each of the num_cb blocks
    # Q_m floor(num_re / num_cb) or Q_m ceil(num_re / num_cb) bits (TS 38.212 5.4.2.1).
    re_per_cb = np.ceil(cb_size / (bits_per_symbol * code_rate) - 1e-9).astype(np.int64)
    num_re = np.maximum(num_re, num_cb * re_per_cb)
    return num_re, tbs, cb_size, num_cb


# Sionna's LDPC encoder has no repetition, so base graph 1 (chosen for code blocks of more than
# 3824 bits at R > 1/4) cannot go below rate 1/3; payloads of MCSs with R < 1/3 are split into
# TBs of at most this many bits, whose TB size (<= 3752) plus the 16-bit TB CRC stays within
# base graph 2's 3824 bits (TS 38.212 7.2.2).
MAX_LOW_RATE_TB_BITS = 3752

# MCS indices are < 64: ``payload_bits * 64 + mcs`` is a unique integer key of the pair.
_MCS_KEY = 64


def segment(payload_bits, mcs, mcs_table):
    r"""Transport blocks carrying each payload: resource elements, TB size, code blocks.

    TB size: the 5G NR TB size (TS 38.214 5.1.3.2 with ``num_coded_bits = Q_m n``) of the
    smallest grid of ``n`` resource elements whose TB holds the payload. Grid: ``num_re`` is
    the larger of that ``n`` and ``num_cb x ceil(cb_size / (Q_m R))``, so that every code
    block, its TB/CB CRC bits included, is rate-matched to at most the MCS's code rate ``R``:
    the rate Sionna's BLER tables were simulated at, and below the 0.95 Sionna's LDPC encoder
    (TS 38.214 5.1.3.1) accepts. Without the second term a small TB at a high rate
    (272 bits at MCS 28: 288 bits with CRC in 294 coded bits) or the 24-bit minimum TB of a
    tiny payload would not be codable. Both fidelities use this sizing, so they agree on
    airtime and energy. For an MCS with code rate below 1/3 a payload above
    :data:`MAX_LOW_RATE_TB_BITS` bits is split into ``num_tb`` equal TBs, sent back to back.
    Cached per ``(mcs_table, mcs, payload)``.

    Input
    -----
    payload_bits : [...], int, >= 1
    mcs : [...], int, valid MCS indices of ``mcs_table``

    Output
    ------
    num_re : [...], int64
        Data resource elements of all the link's TBs.
    tb_size : [...], int64
        Size of each TB in bits (``num_tb x tb_size >= payload``).
    cb_size : [...], int64
        Code-block size in bits (incl. CRC parity, as in Sionna's BLER tables).
    num_cb : [...], int64
        Code blocks of all the link's TBs.
    num_tb : [...], int64
        TBs the payload is split into (1 unless the code rate is below 1/3).
    """
    payload_bits, mcs = np.broadcast_arrays(np.asarray(payload_bits, dtype=np.int64),
                                            np.asarray(mcs, dtype=np.int64))
    # One integer key per (payload, MCS) pair: a 1-D unique (a plain sort) instead of the
    # row-wise unique of a [M, 2] array (a lexsort), several times faster on large batches.
    keys = payload_bits.ravel() * _MCS_KEY + mcs.ravel()
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    unique = np.stack([unique_keys // _MCS_KEY, unique_keys % _MCS_KEY], axis=-1)   # [U, 2]
    missing = [i for i, (b, m) in enumerate(unique.tolist())
               if (mcs_table, m, b) not in _SEGMENT_CACHE]
    if missing:
        qm, rate, _ = mcs_table_arrays(mcs_table)
        b = unique[missing, 0]
        m = unique[missing, 1]
        num_tb = np.where((rate[m] < 1.0 / 3.0) & (b > MAX_LOW_RATE_TB_BITS),
                          -(-b // MAX_LOW_RATE_TB_BITS), 1)
        sub = -(-b // num_tb)
        num_re, tbs, cbs, ncb = _segment_uncached(sub, qm[m], rate[m])
        for j, i in enumerate(missing):
            _SEGMENT_CACHE[(mcs_table, int(unique[i, 1]), int(unique[i, 0]))] = (
                int(num_tb[j] * num_re[j]), int(tbs[j]), int(cbs[j]), int(num_tb[j] * ncb[j]),
                int(num_tb[j]))
    table = np.array([_SEGMENT_CACHE[(mcs_table, m, b)] for b, m in unique.tolist()],
                     dtype=np.int64).reshape(-1, 5)
    inverse = inverse.reshape(payload_bits.shape)
    return tuple(np.take(table[:, i], inverse) for i in range(5))


def grid_symbols(num_re, num_subcarriers):
    r"""OFDM symbols one attempt occupies: data symbols and pilot symbols.

    Input
    -----
    num_re : [...], int
        Data resource elements of the TB.
    num_subcarriers : [...], int, >= 1
        Subcarriers of the link, ``|N_k|``.

    Output
    ------
    data_symbols, pilot_symbols : [...], int64
        ``ceil(num_re / |N_k|)`` and ``ceil(data_symbols / 13)`` (one pilot symbol per slot).
    """
    num_subcarriers = np.maximum(np.asarray(num_subcarriers, dtype=np.int64), 1)
    data = -(-np.asarray(num_re, dtype=np.int64) // num_subcarriers)
    pilots = -(-data // DATA_SYMBOLS_PER_SLOT)
    return data, pilots


def compact_subcarriers(used, *values):
    r"""Gather each row's used subcarriers to the front of a narrow array.

    A link typically occupies a few of the ``S`` subcarriers; the abstraction's per-subcarrier
    work (post-equalisation SINR, EESM, uncoded BER) only needs the used ones. Row ``m`` of
    the output holds the values of row ``m``'s used subcarriers in ascending subcarrier order,
    then padding (marked unused, value 0) up to ``U = max(1, max_m |N_m|)`` columns. Every
    per-subcarrier formula of this module gives the same per-subcarrier values on the compact
    arrays; sums over the used subcarriers (EESM's mean, the mean BER) only add their terms in
    another order (``tests/test_phy_abstraction_fast.py``).

    Input
    -----
    used : [M, S], bool
        Subcarriers each row uses.
    *values : [M, S], any dtype
        Per-subcarrier arrays to gather (e.g. the SNR).

    Output
    ------
    compact_used : [M, U], bool
        True in the first ``|N_m|`` columns of row ``m``.
    *compact_values : [M, U], dtype of each input
        The used subcarriers' values, 0 in the padding.

    Example
    -------
    >>> used = np.array([[False, True, False, True], [True, False, False, False]])
    >>> snr = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    >>> compact_used, compact_snr = compact_subcarriers(used, snr)
    >>> compact_used.tolist(), compact_snr.tolist()
    ([[True, True], [True, False]], [[2.0, 4.0], [5.0, 0.0]])
    """
    used = np.asarray(used, dtype=bool)
    num = used.shape[0]
    count = used.sum(axis=1)
    width = max(int(count.max(initial=0)), 1)
    rows, cols = np.nonzero(used)                     # row-major: ascending column per row
    start = np.cumsum(count) - count
    position = np.arange(len(rows)) - np.repeat(start, count)
    compact_used = np.arange(width)[None, :] < count[:, None]
    out = [compact_used]
    for value in values:
        value = np.asarray(value)
        compact = np.zeros((num, width), dtype=value.dtype)
        compact[rows, position] = value[rows, cols]
        out.append(compact)
    return tuple(out)


def post_equalisation_sinr(snr, pilot_symbols):
    r"""SINR after one-tap equalisation with an LS estimate averaged over the pilot symbols.

    With unit-energy pilots the LS error variance is ``N0 / n_p`` and, treated as noise,
    ``sinr = snr / (1 + 1 / n_p)`` (``docs/phy.md``, "Channel estimation").

    Input
    -----
    snr : [..., subcarriers], float, linear true SNR
    pilot_symbols : [...], int, >= 1

    Output
    ------
    sinr : [..., subcarriers], float64
    """
    n_p = np.maximum(np.asarray(pilot_symbols, dtype=np.float64), 1.0)
    return np.asarray(snr, dtype=np.float64) / (1.0 + 1.0 / n_p)[..., None]


@functools.lru_cache(maxsize=None)
def eesm_beta(mcs_table):
    """[29] float64: Sionna's calibrated EESM beta per MCS of ``mcs_table`` (0 if none)."""
    beta = np.zeros(NUM_MCS)
    row = eesm().beta_tensor.numpy()[mcs_table - 1]
    beta[:min(len(row), NUM_MCS)] = row[:NUM_MCS]
    return beta


def effective_sinr(sinr, used, mcs, mcs_table):
    r"""EESM effective SINR of every link over its used subcarriers.

    ``sinr_eff = -beta log(mean_{n in N_k} exp(-sinr_n / beta))`` with Sionna's beta per MCS,
    as :class:`sionna.sys.EESM` (``per_stream=False``), but evaluated as
    ``min_n sinr_n - beta log(mean_n exp(-(sinr_n - min_n sinr_n) / beta))`` (no underflow at
    high SINR) and clipped to [-30 dB, :data:`dmoe.phy._mcs.SNR_GRID_END_DB`] instead of
    Sionna's [-30, 30] dB, so that the BLER tables' high-SNR tail (``docs/phy.md``) is reached;
    written in numpy because Sionna's eager block costs ~0.5 ms per call of overhead
    (``tests/test_phy_link_abstraction.py`` checks both agree below 30 dB).

    Input
    -----
    sinr : [M, S], float, linear per-subcarrier SINR
    used : [M, S], bool, subcarriers the link occupies
    mcs : [M], int

    Output
    ------
    sinr_eff : [M], float64, linear (1e-3 where no subcarrier is used)
    """
    beta = eesm_beta(mcs_table)[np.asarray(mcs, dtype=np.int64)][:, None]
    beta = np.where(beta > 0, beta, 1.0)
    sinr = np.asarray(sinr, dtype=np.float64)
    count = np.maximum(used.sum(axis=1), 1)
    lowest = np.where(used, sinr, np.inf).min(axis=1, initial=np.inf)
    lowest = np.where(np.isfinite(lowest), lowest, 0.0)[:, None]
    # Every used term is in (0, 1] and the lowest SINR's term is 1: the mean is >= 1/count.
    # Unused subcarriers may lie below the lowest used one: keep them out of exp() (overflow).
    exponent = np.where(used, -(sinr - lowest) / beta, -np.inf)
    mean = np.exp(exponent).sum(axis=1) / count
    sinr_eff = lowest[:, 0] - beta[:, 0] * np.log(np.maximum(mean, 1e-300))
    sinr_eff = np.where(used.any(axis=1), sinr_eff, 1e-3)
    return np.clip(sinr_eff, 1e-3, 10.0 ** (_mcs.SNR_GRID_END_DB / 10.0))


def tb_error_rate(sinr_eff, mcs, cb_size, num_cb, mcs_table):
    r"""TB error probability from Sionna's PHYAbstraction BLER tables at the effective SINR.

    Per code block: the PDSCH table of Sionna's ``PHYAbstraction`` (interpolated by Sionna on a
    0.1 dB x 100-bit grid, extended to high SNR with a decaying tail and made non-increasing
    in SNR by :func:`dmoe.phy._mcs._pdsch_bler_tables`), nearest code-block size, linear in
    SNR (dB), clamped outside the grid (-5 dB .. :data:`dmoe.phy._mcs.SNR_GRID_END_DB`, where
    every BLER is 0). Per TB: ``1 - (1 - BLER_cb)**num_cb``.

    Input
    -----
    sinr_eff : [M], float, linear
    mcs, cb_size, num_cb : [M], int

    Output
    ------
    tbler : [M], float64, in [0, 1] (1 for an MCS without a table)
    """
    cbs_grid = _mcs._pdsch_bler_tables()[2]  # pylint: disable=protected-access
    cbs = _mcs.code_block_index(cb_size, cbs_grid)
    snr_db = 10.0 * np.log10(np.maximum(np.asarray(sinr_eff, dtype=np.float64), 1e-30))
    bler = _mcs.interpolate_bler(snr_db, np.asarray(mcs, dtype=np.int64), cbs, mcs_table)
    bler = np.clip(bler, 0.0, 1.0)
    return 1.0 - (1.0 - bler) ** np.asarray(num_cb, dtype=np.float64)


def uncoded_ber(sinr, bits_per_symbol):
    r"""Bit error rate of Gray-mapped square QAM (``2**bits_per_symbol`` points) at ``sinr``.

    Nearest-neighbour approximation, exact for QPSK (``Q(sqrt(sinr))``):
    ``BER = 4/m (1 - 1/sqrt(M)) Q(sqrt(3 sinr / (M - 1)))``, ``m = log2 M``.

    Input
    -----
    sinr : [...], float, linear, per symbol
    bits_per_symbol : [...], int, even >= 2

    Output
    ------
    ber : [...], float64, in [0, 0.5]
    """
    m = np.asarray(bits_per_symbol, dtype=np.float64)
    points = 2.0 ** m
    arg = np.sqrt(3.0 * np.maximum(sinr, 0.0) / (points - 1.0))
    ber = 4.0 / m * (1.0 - 1.0 / np.sqrt(points)) * 0.5 * erfc(arg / np.sqrt(2.0))
    return np.clip(ber, 0.0, 0.5)

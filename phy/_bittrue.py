"""Bit-true 5G NR link chain on Sionna blocks (``docs/phy.md``, "Link realisation").

One chain per (TB size, coded bits, modulation, code rate): Sionna's ``TBEncoder`` (TB CRC,
code-block segmentation + CRC, 5G LDPC, rate matching, interleaving, scrambling), QAM
``Mapper``, a per-resource-element OFDM channel ``y = h x + n`` on the link's subcarriers with
one pilot OFDM symbol per slot, LS channel estimation averaged over the attempt's pilot
symbols, one-tap LMMSE equalisation with the estimation error counted as noise, APP
``Demapper``, chase combining of LLRs over HARQ attempts and ``TBDecoder`` (20 BP iterations,
TB CRC check). The channel and noise are given as inputs: noise comes from the caller's seeded
generator, the channel is the TRUE sampled channel normalised so that the noise has unit
variance (``|h|**2`` is the SNR).

Run settings: ``execution`` ("eager": plain Python calls of the Sionna blocks, "graph":
``tf.function``, "xla": ``tf.function(jit_compile=True)``) and ``precision`` ("single":
float32/complex64, "double": float64/complex128 in every Sionna block of the chain).
"""

import functools

import numpy as np
import tensorflow as tf

from sionna.phy.mapping import Demapper, Mapper
from sionna.phy.nr import TBDecoder, TBEncoder

from dmoe.common import compile_function, numpy_dtypes, tf_dtypes

__all__ = []

# Unit-energy pilot; LS needs only a known symbol (its value does not change the estimate).
_PILOT = (1.0 + 1.0j) / np.sqrt(2.0)



class TBChain:
    r"""Encoder, channel/receiver and decoder of one TB configuration.

    Parameters
    ----------
    tb_size : int
        TB size in bits (a valid 5G NR TB size, :func:`._abstraction.segment`).
    num_re : int
        Data resource elements of the TB.
    bits_per_symbol : int
        QAM order Q_m.
    code_rate : float
        Target code rate of the MCS.
    num_bp_iter : int
        LDPC belief-propagation iterations (20, as Sionna's BLER tables).
    execution : str
        ``"eager"`` (the Python methods), ``"graph"`` (``tf.function``) or ``"xla"``
        (``tf.function(jit_compile=True)``).
    precision : str
        ``"single"`` or ``"double"``: the ``precision`` of every Sionna block and the dtypes
        of :meth:`encode` / :meth:`receive` (real: float32/float64, complex:
        complex64/complex128).
    """

    def __init__(self, tb_size, num_re, bits_per_symbol, code_rate, num_bp_iter=20,
                 execution="graph", precision="single"):
        self.tb_size = int(tb_size)
        self.num_re = int(num_re)
        self.bits_per_symbol = int(bits_per_symbol)
        self.num_coded_bits = self.num_re * self.bits_per_symbol
        self.execution = execution
        self.precision = precision
        self.real_dtype, self.complex_dtype = tf_dtypes(precision)
        self.encoder = TBEncoder(target_tb_size=self.tb_size, num_coded_bits=self.num_coded_bits,
                                 target_coderate=float(code_rate),
                                 num_bits_per_symbol=self.bits_per_symbol, channel_type="PDSCH",
                                 precision=precision)
        self.decoder = TBDecoder(self.encoder, num_bp_iter=num_bp_iter, cn_update="boxplus-phi",
                                 precision=precision)
        self.mapper = Mapper("qam", self.bits_per_symbol, precision=precision)
        self.demapper = Demapper("app", "qam", self.bits_per_symbol, precision=precision)
        if execution == "eager":
            self.encode, self.receive = self._encode, self._receive
            return
        real, cplx = self.real_dtype, self.complex_dtype
        spec_bits = tf.TensorSpec([None, self.tb_size], real)
        self.encode = compile_function(self._encode, execution, input_signature=[spec_bits])
        self.receive = compile_function(self._receive, execution, input_signature=[
            tf.TensorSpec([None, self.num_re], cplx),              # x
            tf.TensorSpec([None, None], cplx),                     # h [G, N]
            tf.TensorSpec([None, self.num_re], tf.int32),          # subcarrier of each RE
            tf.TensorSpec([None, None, None], cplx),               # pilot noise [G, P, N]
            tf.TensorSpec([None, None], real),                     # pilot weights [G, P]
            tf.TensorSpec([None, self.num_re], cplx),              # data noise
            tf.TensorSpec([None, self.num_coded_bits], real),      # accumulated LLRs
        ])

    def _encode(self, bits):
        return self.mapper(self.encoder(bits))

    def _receive(self, x, h, subcarrier, pilot_noise, pilot_weight, data_noise, llr_prev):
        # LS estimate per subcarrier, averaged over this attempt's pilot symbols.
        cplx = self.complex_dtype
        pilot = tf.constant(_PILOT, cplx)
        y_pilot = h[:, None, :] * pilot + pilot_noise
        weight = tf.cast(pilot_weight, cplx)[:, :, None]
        h_hat = tf.reduce_sum(weight * y_pilot, axis=1) * tf.math.conj(pilot)
        error_var = tf.reduce_sum(tf.square(pilot_weight), axis=1, keepdims=True)  # = 1/n_p
        # Data REs on the TRUE channel.
        h_re = tf.gather(h, subcarrier, batch_dims=1)
        h_hat_re = tf.gather(h_hat, subcarrier, batch_dims=1)
        y = h_re * x + data_noise
        gain = tf.maximum(tf.math.real(h_hat_re) ** 2 + tf.math.imag(h_hat_re) ** 2, 1e-12)
        x_hat = y * tf.math.conj(h_hat_re) / tf.cast(gain, cplx)
        no_eff = (1.0 + error_var) / gain
        llr = self.demapper(x_hat, no_eff)
        llr = llr_prev + tf.reshape(llr, [-1, self.num_coded_bits])
        bits_hat, crc_ok = self.decoder(llr)
        return llr, bits_hat, crc_ok


@functools.lru_cache(maxsize=64)
def tb_chain(tb_size, num_re, bits_per_symbol, code_rate, execution="graph", precision="single"):
    """Cached :class:`TBChain` (building one costs a graph trace)."""
    return TBChain(tb_size, num_re, bits_per_symbol, code_rate, execution=execution,
                   precision=precision)


def complex_normal(rng, shape, precision="single"):
    """CN(0, 1) samples from a numpy Generator, complex64 (single) or complex128 (double)."""
    real, cplx = numpy_dtypes(precision)
    draws = rng.standard_normal(tuple(shape) + (2,), dtype=real) * real(np.sqrt(0.5))
    return (draws[..., 0] + 1j * draws[..., 1]).astype(cplx)


def transmit_group(chain, bits, h, used, pilot_symbols, owner, re_offset, attempts, rng):
    r"""Send TBs through the chain, link by link, with up to ``attempts`` HARQ attempts.

    A link may carry several TBs back to back (rows with the same ``owner``); they share the
    link's pilots (one LS estimate per link and attempt), and a link is retransmitted whole
    until all its TBs pass their CRC.

    Input
    -----
    chain : TBChain
    bits : [R, tb_size], float, 0/1 TB bits (payload + zero padding), one row per TB
    h : [G, N], complex, true channel of each link normalised to unit noise variance (cast to
        the chain's precision)
    used : [G, N], bool, subcarriers of each link (>= 1 per link)
    pilot_symbols : [G], int, pilot OFDM symbols per attempt (>= 1)
    owner : [R], int, link (row of ``h``) of each TB
    re_offset : [R], int, first data RE of each TB in its link's grid
    attempts : int, >= 1
    rng : numpy.random.Generator

    Output
    ------
    bits_hat : [R, tb_size], uint8, decoded TBs at the last attempt made
    crc_ok : [G, attempts], bool, all the link's TBs passed after that attempt
    num_attempts : [G], int64, attempts made (stops at the first full pass)
    """
    num_links, num_subcarriers = h.shape
    num_rows = len(owner)
    # Subcarrier carrying each data RE: the link's used subcarriers in ascending order, filled
    # OFDM symbol by OFDM symbol (RE j of the link -> used subcarrier j mod |N_k|).
    order = np.argsort(~used, axis=1, kind="stable")
    count = used.sum(axis=1)
    position = (re_offset[:, None] + np.arange(chain.num_re)[None, :]) % count[owner][:, None]
    subcarrier = np.take_along_axis(order[owner], position, axis=1).astype(np.int32)
    max_pilots = int(pilot_symbols.max())
    precision = chain.precision
    real, cplx = numpy_dtypes(precision)
    h = np.asarray(h).astype(cplx, copy=False)
    pilot_weight = np.where(np.arange(max_pilots)[None, :] < pilot_symbols[:, None],
                            1.0 / pilot_symbols[:, None], 0.0).astype(real)

    x = chain.encode(tf.constant(bits, chain.real_dtype))
    llr = tf.zeros([num_rows, chain.num_coded_bits], chain.real_dtype)
    active_links = np.arange(num_links)
    bits_hat = np.zeros((num_rows, chain.tb_size), dtype=np.uint8)
    crc_ok = np.zeros((num_links, attempts), dtype=bool)
    num_attempts = np.zeros(num_links, dtype=np.int64)
    for attempt in range(attempts):
        rows = np.flatnonzero(np.isin(owner, active_links))
        # Pilots are per link: TBs of one link share the estimate.
        pilot_noise = complex_normal(rng, (num_links, max_pilots, num_subcarriers),
                                     precision)[owner[rows]]
        data_noise = complex_normal(rng, (len(rows), chain.num_re), precision)
        llr_rows, bits_rows, ok_rows = chain.receive(
            tf.gather(x, rows), tf.constant(h[owner[rows]]), tf.constant(subcarrier[rows]),
            tf.constant(pilot_noise), tf.constant(pilot_weight[owner[rows]]),
            tf.constant(data_noise), tf.gather(llr, rows))
        bits_hat[rows] = bits_rows.numpy().astype(np.uint8)
        llr = tf.tensor_scatter_nd_update(llr, rows[:, None], llr_rows)
        failed_links = np.unique(owner[rows][~ok_rows.numpy()])
        passed = np.setdiff1d(active_links, failed_links)
        crc_ok[passed, attempt] = True
        num_attempts[active_links] += 1
        active_links = failed_links
        if len(active_links) == 0:
            break
    return bits_hat, crc_ok, num_attempts

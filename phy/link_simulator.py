"""Link realisation: what happens to a payload sent on a set of subcarriers.

Two fidelities share one transport-block, resource-grid and HARQ model (``docs/phy.md``,
"Link realisation"): ``"abstraction"`` (EESM + Sionna's BLER tables) and ``"link"`` (bit-true
5G NR chain on Sionna blocks).
"""

from dataclasses import dataclass
import numbers

import numpy as np

from dmoe.common import check_execution, check_precision, numpy_dtypes

from .config import ChannelConfig
from .links import Links
from . import _abstraction as _abs
from . import _mcs

__all__ = ["LinkSimulator", "TransmissionResult", "FIDELITIES"]

FIDELITIES = ("abstraction", "link")
_DIRECTIONS = ("dispatch", "return")


@dataclass(frozen=True)
class TransmissionResult:
    r"""What happened on every link of one :meth:`LinkSimulator.transmit` call.

    Every field is a numpy array of shape [batch, rounds, links].

    Parameters
    ----------
    delivered : bool
        The TB passed its check within ``1 + max_retransmissions`` attempts (a payload of 0
        bits counts as delivered; a link with no subcarrier is not transmitted: False).
    bit_errors : int64
        Payload bits that differ from what was sent, after the last attempt.
    airtime_s : float64
        Total airtime over all attempts in s (pilot symbols and cyclic prefix included).
    energy_j : float64
        Radiated energy ``P_sc x |N_k| x airtime_s`` in J.
    retransmissions : int64
        HARQ retransmissions used (attempts - 1; 0 if not transmitted).
    mcs : int64
        MCS index used (-1 if not transmitted).
    block_error : bool
        The first attempt failed.
    received : [batch, rounds, links, max_payload_bits], uint8, or None
        Received payload bits when ``payload`` was given (zeros where not transmitted).
    fidelity : str
        ``"abstraction"`` or ``"link"``.
    seed : int or None
        Seed the call was made with.
    execution : str
        The simulator's execution mode (``"eager"``, ``"graph"`` or ``"xla"``).
    precision : str
        The simulator's precision (``"single"`` or ``"double"``).
    """

    delivered: np.ndarray
    bit_errors: np.ndarray
    airtime_s: np.ndarray
    energy_j: np.ndarray
    retransmissions: np.ndarray
    mcs: np.ndarray
    block_error: np.ndarray
    received: np.ndarray = None
    fidelity: str = "abstraction"
    seed: int = None
    execution: str = "graph"
    precision: str = "single"


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class LinkSimulator:
    r"""Realises transmissions of payloads on sampled links, at one of two fidelities.

    Both fidelities put a payload of ``B`` bits into the smallest 5G NR transport block
    (TS 38.214) that holds it at the chosen MCS, on enough resource elements that every code
    block (CRC included) is coded at no more than the MCS's code rate (``_abstraction.segment``;
    any payload >= 1 bit at any accepted MCS), fill the link's subcarriers OFDM symbol by OFDM
    symbol, insert one pilot OFDM symbol per 14-symbol slot, and repeat the TB (chase
    combining) until it passes or ``max_retransmissions`` retransmissions are spent.

    - ``"abstraction"``: post-equalisation SINR per subcarrier (true SNR, LS-estimation loss
      ``1 / (1 + 1/n_p)``), summed over attempts; EESM effective SINR (Sionna ``EESM``);
      TB error probability from Sionna's ``PHYAbstraction`` BLER tables (with a decaying tail
      above their last simulated SNR, non-increasing in SNR); a Bernoulli draw per
      attempt. A block that still fails gets i.i.d. bit errors at the uncoded QAM BER averaged
      over its subcarriers (at the combined SINR).
    - ``"link"``: Sionna TBEncoder / QAM Mapper / ``y = h x + n`` per resource element on the
      TRUE channel / LS estimate from the pilots / one-tap LMMSE / APP Demapper / LLR chase
      combining / TBDecoder with CRC; the received bits are the decoded bits.

    Link adaptation (``mcs=None``) picks, per link, the highest MCS whose abstraction TB error
    rate at the scheduler's view (``links.csi_snr_*``) is at most ``bler_target`` (the lowest
    MCS with a BLER table if none is). CSI only changes this choice; realisation always uses
    the true channel.

    Parameters
    ----------
    cfg : ChannelConfig
        Supplies the numerology (``subcarrier_spacing_hz``, ``num_subcarriers``).
    fidelity : str
        ``"abstraction"`` (default) or ``"link"``.
    max_retransmissions : int
        HARQ retransmissions after the first attempt, >= 0 (default 3).
    bler_target : float
        Target first-attempt TB error rate of link adaptation, in (0, 1) (default 0.1).
    mcs_table : int
        TS 38.214 PDSCH MCS table: 1 (default, up to 64QAM) or 2 (up to 256QAM).
    execution : str
        How the bit-true chain (``"link"``) runs: ``"eager"`` (plain Python calls of the
        Sionna blocks), ``"graph"`` (default, ``tf.function``) or ``"xla"``
        (``tf.function(jit_compile=True)``; every block of the chain compiles, see
        ``docs/phy.md``). ``"abstraction"`` accepts and records it, but it runs in numpy.
    precision : str
        ``"single"`` (default) or ``"double"``: for ``"link"``, the ``precision`` of the Sionna
        blocks (TBEncoder, Mapper, Demapper, TBDecoder), of the channel/receiver tensors
        (complex64 / complex128) and of the noise draws; the links' channel is cast to it.
        ``"abstraction"`` accepts and records it, but always computes in numpy float64 (from
        the float32 or float64 SNRs of the links).

    Input (:meth:`transmit`)
    ------------------------
    links : Links
        Channels [batch, rounds, links, subcarriers].
    payload_bits : int or int array broadcastable to [batch, rounds, links], >= 0
    subcarriers : [batch, rounds, links, subcarriers], bool
        Subcarriers each link uses.
    mcs : None or int array broadcastable to [batch, rounds, links]
        None: link adaptation.
    direction : str
        ``"dispatch"`` or ``"return"``.
    payload : [batch, rounds, links, max_payload_bits], uint8 0/1, or None
        Bits to send (bit ``i >= payload_bits`` of a link is ignored). None: random bits are
        sent (``"link"``) or only counted (``"abstraction"``).
    seed : int or None
        Seed of this call's draws; None draws from ``sionna.phy.config.np_rng``.

    Output
    ------
    result : TransmissionResult

    Example
    -------
    >>> import numpy as np
    >>> from dmoe.phy import ChannelConfig, LinkSimulator, sample_links
    >>> cfg = ChannelConfig(num_subcarriers=16)
    >>> links = sample_links(cfg, batch_size=2, num_links=3, seed=0)
    >>> mask = np.zeros(links.shape, bool); mask[..., :4] = True
    >>> out = LinkSimulator(cfg).transmit(links, 1024, mask, seed=0)
    >>> out.delivered.shape
    (2, 1, 3)
    """

    def __init__(self, cfg, fidelity="abstraction", max_retransmissions=3, bler_target=0.1,
                 mcs_table=1, execution="graph", precision="single"):
        if not isinstance(cfg, ChannelConfig):
            raise TypeError(f"cfg must be a ChannelConfig, got {type(cfg).__name__}")
        if fidelity not in FIDELITIES:
            raise ValueError(f"fidelity must be one of {FIDELITIES}, got {fidelity!r}")
        if not _is_int(max_retransmissions) or max_retransmissions < 0:
            raise ValueError(f"max_retransmissions must be an int >= 0, "
                             f"got {max_retransmissions!r}")
        if not (isinstance(bler_target, numbers.Real) and 0.0 < bler_target < 1.0):
            raise ValueError(f"bler_target must be in (0, 1), got {bler_target!r}")
        if mcs_table not in _mcs.MCS_TABLES:
            raise ValueError(f"mcs_table must be one of {_mcs.MCS_TABLES}, got {mcs_table!r}")
        check_execution(execution)
        check_precision(precision)
        self.cfg = cfg
        self.execution = execution
        self.precision = precision
        self.fidelity = fidelity
        self.max_retransmissions = int(max_retransmissions)
        self.bler_target = float(bler_target)
        self.mcs_table = int(mcs_table)
        self.symbol_duration_s = _abs.ofdm_symbol_duration_s(cfg.subcarrier_spacing_hz)

    # ------------------------------------------------------------------ inputs
    def _check_inputs(self, links, payload_bits, subcarriers, mcs, direction, payload):
        if not isinstance(links, Links):
            raise TypeError(f"links must be a Links, got {type(links).__name__}")
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        shape = tuple(links.shape)
        if shape[-1] != self.cfg.num_subcarriers:
            raise ValueError(f"links must have cfg.num_subcarriers={self.cfg.num_subcarriers} "
                             f"subcarriers, got shape {shape}")
        subcarriers = np.asarray(subcarriers)
        if subcarriers.shape != shape:
            raise ValueError(f"subcarriers must be a bool mask of shape [batch, rounds, links, "
                             f"subcarriers]={shape}, got {subcarriers.shape}")
        if subcarriers.dtype != bool:
            if not np.isin(subcarriers, (0, 1)).all():
                raise ValueError("subcarriers must be a bool mask (or 0/1)")
            subcarriers = subcarriers.astype(bool)
        link_shape = shape[:3]
        payload_bits = np.asarray(payload_bits)
        if not np.issubdtype(payload_bits.dtype, np.integer):
            if not (np.issubdtype(payload_bits.dtype, np.floating)
                    and np.all(payload_bits == np.round(payload_bits))):
                raise ValueError(f"payload_bits must be integers, got dtype {payload_bits.dtype}")
        if np.any(payload_bits < 0):
            raise ValueError("payload_bits must be >= 0")
        try:
            payload_bits = np.broadcast_to(payload_bits.astype(np.int64), link_shape)
        except ValueError:
            raise ValueError(f"payload_bits must be broadcastable to [batch, rounds, links]="
                             f"{link_shape}, got shape {payload_bits.shape}") from None
        _, _, has_table = _abs.mcs_table_arrays(self.mcs_table)
        if mcs is not None:
            mcs = np.asarray(mcs)
            if not np.issubdtype(mcs.dtype, np.integer):
                raise ValueError(f"mcs must be None or integers, got dtype {mcs.dtype}")
            try:
                mcs = np.broadcast_to(mcs.astype(np.int64), link_shape)
            except ValueError:
                raise ValueError(f"mcs must be broadcastable to [batch, rounds, links]="
                                 f"{link_shape}, got shape {mcs.shape}") from None
            if np.any((mcs < 0) | (mcs >= _abs.NUM_MCS)):
                raise ValueError(f"mcs must be in [0, {_abs.NUM_MCS - 1}]")
            # Both fidelities use the MCSs the abstraction has tables for (they are also the
            # ones Sionna's LDPC encoder codes without repetition).
            if not has_table[mcs].all():
                raise ValueError(f"mcs must be one of {np.flatnonzero(has_table).tolist()} for "
                                 f"mcs_table={self.mcs_table} (Sionna ships no BLER table for "
                                 "the others)")
        if payload is not None:
            payload = np.asarray(payload)
            if payload.ndim != 4 or payload.shape[:3] != link_shape:
                raise ValueError(f"payload must have shape [batch, rounds, links, "
                                 f"max_payload_bits] with [batch, rounds, links]={link_shape}, "
                                 f"got {payload.shape}")
            if payload.shape[3] < payload_bits.max(initial=0):
                raise ValueError(f"payload must hold max(payload_bits)="
                                 f"{int(payload_bits.max())} bits, got {payload.shape[3]}")
            if not np.isin(payload, (0, 1)).all():
                raise ValueError("payload must contain only 0/1 bits")
            payload = payload.astype(np.uint8)
        return payload_bits, subcarriers, mcs, payload

    # -------------------------------------------------------- link adaptation
    def _block_error_rate(self, snr, used, payload_bits, mcs, attempt=1):
        """Abstraction TB error rate of attempt ``attempt`` (chase combined).

        snr, used: [M, S]; payload_bits, mcs: [M]. Returns ``tbler`` [M] float64 and the
        combined post-equalisation SINR of the used subcarriers, compacted to [M, U]
        (:func:`_abstraction.compact_subcarriers`).
        """
        compact_used, compact_snr = _abs.compact_subcarriers(used, snr)
        num_re, _, cb_size, num_cb, _ = _abs.segment(payload_bits, mcs, self.mcs_table)
        _, pilots = _abs.grid_symbols(num_re, compact_used.sum(axis=-1))
        sinr = attempt * _abs.post_equalisation_sinr(compact_snr, pilots)
        sinr_eff = _abs.effective_sinr(sinr, compact_used, mcs, self.mcs_table)
        return _abs.tb_error_rate(sinr_eff, mcs, cb_size, num_cb, self.mcs_table), sinr

    def select_mcs(self, snr, subcarriers, payload_bits):
        r"""Link adaptation: the highest MCS whose TB error rate at ``snr`` is <= bler_target.

        Every candidate MCS is evaluated on the link's used subcarriers only (gathered into a
        compact [M, U] array, ``U`` the most subcarriers any row uses), and the TB sizing once
        per distinct payload.

        Input
        -----
        snr : [M, subcarriers], float, linear SNR the scheduler sees
        subcarriers : [M, subcarriers], bool, >= 1 per row
        payload_bits : [M], int, >= 1

        Output
        ------
        mcs : [M], int64 (the lowest MCS with a BLER table where none meets the target)
        """
        _, _, has_table = _abs.mcs_table_arrays(self.mcs_table)
        candidates = np.flatnonzero(has_table)
        num = len(snr)
        chosen = np.full(num, candidates[0], dtype=np.int64)
        if num == 0:
            return chosen
        k = len(candidates)
        compact_used, compact_snr = _abs.compact_subcarriers(subcarriers, snr)   # [M, U]
        width = compact_used.shape[1]
        # TB sizing per distinct payload x candidate, then per link: [M, k].
        bits, inverse = np.unique(np.asarray(payload_bits, dtype=np.int64).reshape(num),
                                  return_inverse=True)
        num_re, _, cb_size, num_cb, _ = (
            part[inverse.reshape(num)] for part in _abs.segment(
                bits[:, None], candidates[None, :], self.mcs_table))
        _, pilots = _abs.grid_symbols(num_re, compact_used.sum(axis=-1)[:, None])
        sinr = _abs.post_equalisation_sinr(compact_snr[:, None, :], pilots)     # [M, k, U]
        mcs = np.tile(candidates, num)
        sinr_eff = _abs.effective_sinr(sinr.reshape(num * k, width),
                                       np.repeat(compact_used, k, axis=0), mcs, self.mcs_table)
        tbler = _abs.tb_error_rate(sinr_eff, mcs, cb_size.reshape(-1), num_cb.reshape(-1),
                                   self.mcs_table)
        ok = tbler.reshape(num, k) <= self.bler_target
        best = np.where(ok.any(axis=1), k - 1 - np.argmax(ok[:, ::-1], axis=1), 0)
        return candidates[best].astype(np.int64)

    # ---------------------------------------------------------------- transmit
    def transmit(self, links, payload_bits, subcarriers, mcs=None, direction="dispatch",
                 payload=None, seed=None):
        """Realise the transmissions (see the class docstring for inputs and outputs)."""
        payload_bits, subcarriers, mcs, payload = self._check_inputs(
            links, payload_bits, subcarriers, mcs, direction, payload)
        if seed is None:
            from sionna.phy import config as sionna_config
            rng = sionna_config.np_rng
        else:
            rng = np.random.default_rng(seed)
        link_shape = payload_bits.shape
        num_used = subcarriers.sum(axis=-1)
        sent = (num_used > 0) & (payload_bits > 0)
        index = np.flatnonzero(sent.ravel())
        num_subcarriers = subcarriers.shape[-1]

        flat_used = subcarriers.reshape(-1, num_subcarriers)[index]
        flat_bits = payload_bits.ravel()[index]
        if mcs is None:
            csi = links.snr(direction, "csi").reshape(-1, num_subcarriers)[index]
            flat_mcs = self.select_mcs(csi, flat_used, flat_bits)
        else:
            flat_mcs = mcs.ravel()[index]
        true_snr = links.snr(direction, "true").reshape(-1, num_subcarriers)[index]
        num_re, tb_size, _, _, num_tb = _abs.segment(flat_bits, flat_mcs, self.mcs_table)
        data_symbols, pilot_symbols = _abs.grid_symbols(num_re, flat_used.sum(axis=-1))
        attempt_airtime = (data_symbols + pilot_symbols) * self.symbol_duration_s

        flat_payload = None
        if payload is not None:
            flat_payload = payload.reshape(-1, payload.shape[-1])[index]
        if self.fidelity == "abstraction":
            ok, attempts, errors, received = self._realise_abstraction(
                true_snr, flat_used, flat_bits, flat_mcs, flat_payload, rng)
        else:
            h = getattr(links, f"h_{direction}").reshape(-1, num_subcarriers)[index]
            scale = np.sqrt(links.config.subcarrier_power_w / links.config.noise_power_w)
            ok, attempts, errors, received = self._realise_link(
                (h * scale).astype(numpy_dtypes(self.precision)[1]), flat_used, flat_bits, flat_mcs,
                num_re,
                tb_size, num_tb, pilot_symbols, flat_payload, rng)

        num_links = int(np.prod(link_shape))
        delivered = (payload_bits.ravel() == 0) & (num_used.ravel() > 0)
        delivered[index] = ok.any(axis=1)
        out = {
            "delivered": delivered,
            "bit_errors": np.zeros(num_links, np.int64),
            "airtime_s": np.zeros(num_links, np.float64),
            "retransmissions": np.zeros(num_links, np.int64),
            "mcs": np.full(num_links, -1, np.int64),
            "block_error": np.zeros(num_links, bool),
        }
        out["bit_errors"][index] = errors
        out["airtime_s"][index] = attempts * attempt_airtime
        out["retransmissions"][index] = attempts - 1
        out["mcs"][index] = flat_mcs
        out["block_error"][index] = ~ok[:, 0]
        out = {name: value.reshape(link_shape) for name, value in out.items()}
        out["energy_j"] = (links.config.subcarrier_power_w * num_used * out["airtime_s"])
        full_received = None
        if payload is not None:
            full_received = np.zeros(payload.shape, dtype=np.uint8)
            flat_received = full_received.reshape(-1, payload.shape[-1])
            flat_received[index] = received
        return TransmissionResult(received=full_received, fidelity=self.fidelity, seed=seed,
                                  execution=self.execution, precision=self.precision, **out)

    def _attempts(self, ok):
        """Attempts made: up to and including the first success. ok: [M, A] bool."""
        first = np.argmax(ok, axis=1) + 1
        return np.where(ok.any(axis=1), first, ok.shape[1]).astype(np.int64)

    def _realise_abstraction(self, snr, used, payload_bits, mcs, payload, rng):
        num = len(snr)
        # Only the used subcarriers matter: [M, S] -> [M, U].
        used, snr = _abs.compact_subcarriers(used, snr)
        num_attempts = 1 + self.max_retransmissions
        num_re, _, cb_size, num_cb, _ = _abs.segment(payload_bits, mcs, self.mcs_table)
        _, pilots = _abs.grid_symbols(num_re, used.sum(axis=-1))
        # Expected post-equalisation SINR of one attempt (LS loss 1 / (1 + 1/n_p)); each
        # attempt brings its own pilots, chase combining adds the SINRs of the attempts so far.
        single = _abs.post_equalisation_sinr(snr, pilots)
        ok = np.zeros((num, num_attempts), dtype=bool)
        for attempt in range(1, num_attempts + 1):
            sinr_eff = _abs.effective_sinr(attempt * single, used, mcs, self.mcs_table)
            tbler = _abs.tb_error_rate(sinr_eff, mcs, cb_size, num_cb, self.mcs_table)
            # Attempts are drawn conditionally independently given their combined SINR;
            # draws after the first success do not matter.
            ok[:, attempt - 1] = rng.random(num) >= tbler
        attempts = self._attempts(ok)
        delivered = ok.any(axis=1)
        qm, _, _ = _abs.mcs_table_arrays(self.mcs_table)
        # Failed blocks: uncoded BER at the chase-combined SINR of the last attempt, averaged
        # over the link's subcarriers (all are equally loaded up to one OFDM symbol).
        last = single * attempts[:, None]
        ber = (_abs.uncoded_ber(last, qm[mcs][:, None]) * used).sum(axis=1) / np.maximum(
            used.sum(axis=1), 1)
        ber = np.where(delivered, 0.0, ber)
        received = None
        if payload is not None:
            width = payload.shape[1]
            flips = (rng.random((num, width)) < ber[:, None]) & (
                np.arange(width)[None, :] < payload_bits[:, None])
            received = payload ^ flips.astype(np.uint8)
            errors = flips.sum(axis=1).astype(np.int64)
        else:
            errors = rng.binomial(payload_bits, ber).astype(np.int64)
        return ok, attempts, errors, received

    def _realise_link(self, h, used, payload_bits, mcs, num_re, tb_size, num_tb, pilot_symbols,
                      payload, rng):
        from . import _bittrue
        num = len(h)
        num_attempts = 1 + self.max_retransmissions
        qm, rate, _ = _abs.mcs_table_arrays(self.mcs_table)
        ok = np.zeros((num, num_attempts), dtype=bool)
        attempts = np.zeros(num, dtype=np.int64)
        errors = np.zeros(num, dtype=np.int64)
        width = payload.shape[1] if payload is not None else 0
        received = np.zeros((num, width), dtype=np.uint8) if payload is not None else None
        sub_re = num_re // num_tb
        groups = {}
        for i, key in enumerate(zip(tb_size.tolist(), sub_re.tolist(), mcs.tolist())):
            groups.setdefault(key, []).append(i)
        for (tbs, re_count, m), members in groups.items():
            members = np.asarray(members)
            chain = _bittrue.tb_chain(tbs, re_count, int(qm[m]), float(rate[m]),
                                      self.execution, self.precision)
            # One row per TB: a link whose payload is split sends its TBs back to back.
            owner = np.repeat(np.arange(len(members)), num_tb[members])
            part = np.concatenate([np.arange(n) for n in num_tb[members]])
            bits = np.zeros((len(owner), tbs), dtype=np.float32)
            sent_bits = []
            for row, i in enumerate(members):
                b = int(payload_bits[i])
                info = (payload[i, :b] if payload is not None
                        else rng.integers(0, 2, b, dtype=np.uint8))
                sent_bits.append(info)
                chunk = -(-b // int(num_tb[i]))
                for r in range(int(num_tb[i])):
                    piece = info[r * chunk:(r + 1) * chunk]
                    bits[np.flatnonzero((owner == row) & (part == r))[0], :len(piece)] = piece
            bits_hat, crc_ok, made = _bittrue.transmit_group(
                chain, bits, h[members], used[members], pilot_symbols[members], owner,
                part * re_count, num_attempts, rng)
            ok[members] = crc_ok
            attempts[members] = made
            for row, i in enumerate(members):
                b = int(payload_bits[i])
                chunk = -(-b // int(num_tb[i]))
                rows = np.flatnonzero(owner == row)
                decoded = np.concatenate([bits_hat[r, :chunk] for r in rows])[:b]
                errors[i] = int(np.count_nonzero(decoded != sent_bits[row]))
                if received is not None:
                    received[i, :b] = decoded
        return ok, attempts, errors, received

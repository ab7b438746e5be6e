r"""One protocol round: one MoE layer of a batch of tokens, from the decision to the combination.

Given the scheme's :class:`~dmoe.cosim.schemes.Decision` for layer l (``docs/cosim.md``, "One
round"):

1. the coordinator quantises each routed token (``model.to_bits``) and sends it on the dispatch
   links of the selected experts (``LinkSimulator.transmit``);
2. every node that received the token (with ``phy.on_failure = "corrupt"``: also a corrupted one)
   runs its expert on what it decoded (``model.expert_outputs``);
3. the nodes return their quantised outputs on the return links;
4. the coordinator combines what arrived (``model.combine``): the experts whose both links
   delivered (``"drop"``), or every computed expert with its bit errors (``"corrupt"``).

A model without activations (a gate trace) sends only payload sizes; its failures are drops.

Each link carries an air payload of ``16 + air_width x B`` bits (``[moe] air_width``, by default
the model's own width): its size sets airtime, energy, HARQ and BLER, and the model's own
quantised bits travel inside it, interleaved over all of it (:class:`~dmoe.moe.PayloadLayout`),
so with ``"corrupt"`` they see the air payload's bit errors.
"""

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from dmoe.scheduler import link_energy_airtime

from .study import derive_seed

__all__ = ["Phase", "RoundOutcome", "play_round", "one_round", "per_token"]


@dataclass(frozen=True)
class Phase:
    """What happened on every link of one phase (dispatch or return) of a round.

    Attributes
    ----------
    delivered : [T, K], bool
        The link was used and its payload decoded correctly after HARQ.
    energy_j, airtime_s : [T, K], float64
        Realised transmit energy and airtime, retransmissions included.
    block_error : [T, K], float64
        1 where the first attempt failed.
    bit_errors : [T, K], float64
        Payload bit errors after HARQ.
    retransmissions : [T, K], float64
    received : [T, K, payload_bits], uint8, or None
        The decoded payload bits (only when a payload was sent for ``"corrupt"``).
    """

    delivered: np.ndarray
    energy_j: np.ndarray
    airtime_s: np.ndarray
    block_error: np.ndarray
    bit_errors: np.ndarray
    retransmissions: np.ndarray
    received: Optional[np.ndarray] = None


@dataclass(frozen=True)
class RoundOutcome:
    """Everything the metrics need of one round.

    Attributes
    ----------
    relevance : [T, K], float64
    decision : Decision
    planned_dispatch, planned_return : tuple of ([T, K], [T, K]) float64
        Planned energy and airtime of the decided links (planning rates).
    dispatch, returned : Phase
    return_mask : [T, K, N], bool
        Return subcarriers of the nodes that computed.
    computed : [T, K], bool
        Selected experts whose node received the token (and so computed).
    arrived : [T, K], bool
        Experts combined into the state.
    payload_bits : int
    state : object
        The coordinator state after the round.
    """

    relevance: np.ndarray
    decision: Any
    planned_dispatch: tuple
    planned_return: tuple
    dispatch: Phase
    returned: Phase
    return_mask: np.ndarray
    computed: np.ndarray
    arrived: np.ndarray
    payload_bits: int
    state: Any


def one_round(links, layer):
    """The links of round ``layer`` only, as a one-round ``Links`` (arrays [T, 1, K, N])."""
    values = {}
    for item in dataclasses.fields(links):
        value = getattr(links, item.name)
        if item.name == "config":
            value = dataclasses.replace(value, num_rounds=1)
        elif isinstance(value, np.ndarray) and value.ndim == 4:
            value = value[:, layer:layer + 1]
        values[item.name] = value
    return type(links)(**values)


def per_token(links, tokens_per_example):
    """Links of every routed token: each example's links repeated for its tokens (axis 0).

    The tokens of one example travel together in a round, over the same channel.
    """
    if tokens_per_example == 1:
        return links
    values = {}
    for item in dataclasses.fields(links):
        value = getattr(links, item.name)
        if isinstance(value, np.ndarray):
            value = np.repeat(value, tokens_per_example, axis=0)
        values[item.name] = value
    return type(links)(**values)


def _transmit(sim, links_round, mask, payload_bits, payload, seed, direction, planned,
              layout=None):
    """Realise one phase for every link.

    ``payload`` [T, K, proxy_bits] are the model's own bits (or None); they travel inside the
    ``payload_bits``-bit air payload as ``layout`` (a :class:`~dmoe.moe.PayloadLayout`, None for
    the identity) places them, and ``received`` holds them as decoded.
    """
    num_tokens, num_experts = mask.shape[:2]
    used = mask.any(axis=-1)
    if sim is None:  # fidelity = "ideal": everything arrives as planned
        energy, airtime = planned
        zeros = np.zeros((num_tokens, num_experts))
        return Phase(delivered=used, energy_j=energy, airtime_s=airtime, block_error=zeros,
                     bit_errors=zeros, retransmissions=zeros, received=payload)
    identity = layout is None or layout.is_identity
    air = None
    if payload is not None and identity:
        air = payload
    elif payload is not None and sim.fidelity == "link":
        air = layout.embed(payload)          # the bit-true chain decodes the real air payload
    out = sim.transmit(links_round, payload_bits=int(payload_bits), subcarriers=mask[:, None],
                       mcs=None, direction=direction,
                       payload=None if air is None else air[:, None], seed=int(seed))
    bit_errors = np.asarray(out.bit_errors, dtype=np.float64)[:, 0]
    received = None
    if air is not None:
        received = np.asarray(out.received)[:, 0]
        if not identity:
            received = layout.extract(received)
    elif payload is not None:
        # The abstraction's failed blocks have i.i.d. bit errors: place the link's count on the
        # air payload and keep those on the model's bits (docs/moe.md), without [T, K, air]
        # arrays.
        received = payload.copy()
        hit = bit_errors > 0
        received[hit] = layout.apply_bit_errors(
            payload[hit], bit_errors[hit].astype(np.int64),
            np.random.default_rng(derive_seed(seed, "payload")))
    return Phase(
        delivered=np.asarray(out.delivered)[:, 0] & used,
        energy_j=np.asarray(out.energy_j, dtype=np.float64)[:, 0],
        airtime_s=np.asarray(out.airtime_s, dtype=np.float64)[:, 0],
        block_error=np.asarray(out.block_error, dtype=np.float64)[:, 0],
        bit_errors=bit_errors,
        retransmissions=np.asarray(out.retransmissions, dtype=np.float64)[:, 0],
        received=received)


def _expert_outputs(model, layer, tokens_sent, received_bits, bits_per_value, errors, computed):
    """Each node's output on what it received: [T, K, width] (rows of idle nodes unused).

    ``tokens_sent`` [T, width] is the quantised token every node gets intact; rows of
    ``received_bits`` [T, K, bits] with ``errors`` [T, K] > 0 are decoded and recomputed. A
    model whose ``expert_outputs`` takes ``selected=`` computes only the ``computed`` [T, K]
    pairs (the others are never sent back).
    """
    if _takes_selection(model):
        outputs = model.expert_outputs(layer, tokens_sent, selected=computed)
    else:
        outputs = model.expert_outputs(layer, tokens_sent)
    if received_bits is None or not np.any(errors > 0):
        return outputs
    token, expert = np.nonzero(errors > 0)
    corrupted = model.from_bits(received_bits[token, expert], bits_per_value)
    outputs = outputs.copy()
    outputs[token, expert] = model.expert_outputs(layer, corrupted)[np.arange(len(token)), expert]
    return outputs


def _takes_selection(model):
    try:
        return "selected" in inspect.signature(model.expert_outputs).parameters
    except (TypeError, ValueError):
        return False


def play_round(model, layer, state, tokens, relevance, decision, *, links, rate_dispatch,
               rate_return, payload_bits, power_w, sim, link_seed, bits_per_value, corrupt,
               clock, layout=None):
    r"""Run one round of the protocol for a batch of routed tokens.

    Parameters
    ----------
    model : MoEProtocol
    layer : int
    state : object
        Coordinator state before the layer.
    tokens : [T, width], float32, or None
        Routed tokens (``model.route``); None for a model without activations.
    relevance : [T, K], float64
    decision : Decision
    links : Links
        This round's links (:func:`one_round`).
    rate_dispatch, rate_return : [T, K, N], float64
        This round's planning rates.
    payload_bits : int
        Bits of each link's air payload (what is planned, sent, timed and costed).
    power_w : float
        Power per subcarrier.
    sim : LinkSimulator or None
        None for ``phy.fidelity = "ideal"``.
    link_seed : int
        Seed of the point's (or chunk's) link outcomes.
    bits_per_value : int
    corrupt : bool
        Failed blocks are delivered with their bit errors (``phy.on_failure = "corrupt"``).
    clock : callable
        ``clock(part)`` is a context that times ``"phy"`` or ``"moe"``.
    layout : PayloadLayout or None
        Where the model's ``to_bits`` sit in the air payload (``layout.air_bits ==
        payload_bits``); None when the air payload is the model's own.

    Output
    ------
    outcome : RoundOutcome
    """
    selected = decision.selected
    num_tokens, num_experts = selected.shape
    activations = model.has_activations
    planned_d = link_energy_airtime(rate_dispatch, decision.dispatch, payload_bits, power_w)
    planned_u = link_energy_airtime(rate_return, decision.returned, payload_bits, power_w)

    payload = out_bits = None
    if activations:
        with clock("moe"):
            sent_bits = model.to_bits(tokens, bits_per_value)                  # [T, bits]
            tokens_sent = model.from_bits(sent_bits, bits_per_value)
        if corrupt and sim is not None:
            payload = np.ascontiguousarray(np.broadcast_to(
                sent_bits[:, None, :], (num_tokens, num_experts, sent_bits.shape[1])))
    with clock("phy"):
        dispatch = _transmit(sim, links, decision.dispatch, payload_bits, payload,
                             derive_seed(link_seed, layer, "dispatch"), "dispatch", planned_d,
                             layout)
    reached_node = dispatch.delivered | (corrupt & selected)
    if activations:
        with clock("moe"):
            computed = selected & reached_node
            outputs = _expert_outputs(model, layer, tokens_sent, dispatch.received,
                                      bits_per_value, dispatch.bit_errors * selected, computed)
            # Only computing nodes send anything back: quantise just their outputs.
            token, expert = np.nonzero(computed)
            pair_bits = model.to_bits(outputs[token, expert], bits_per_value)  # [M, bits]
            out_bits = np.zeros((num_tokens, num_experts, pair_bits.shape[-1]), np.uint8)
            out_bits[token, expert] = pair_bits                                # [T, K, bits]
            outputs_sent = np.zeros_like(outputs)
            outputs_sent[token, expert] = model.from_bits(pair_bits, bits_per_value)

    # Only nodes that got (something of) the token compute and answer.
    return_mask = decision.returned & reached_node[..., None]
    with clock("phy"):
        back = _transmit(sim, links, return_mask, payload_bits,
                         out_bits if (corrupt and sim is not None) else None,
                         derive_seed(link_seed, layer, "return"), "return",
                         link_energy_airtime(rate_return, return_mask, payload_bits, power_w),
                         layout)
    received = None
    if corrupt:
        arrived = selected & reached_node & return_mask.any(axis=-1)
        received = outputs_sent
        if back.received is not None:
            decoded = model.from_bits(back.received, bits_per_value)
            received = np.where((back.bit_errors > 0)[..., None], decoded, outputs_sent)
    else:
        arrived = selected & dispatch.delivered & back.delivered
        if activations:
            received = outputs_sent
    with clock("moe"):
        state = model.combine(layer, state, received, arrived)
    return RoundOutcome(relevance=relevance, decision=decision, planned_dispatch=planned_d,
                        planned_return=planned_u, dispatch=dispatch, returned=back,
                        return_mask=return_mask, computed=selected & reached_node,
                        arrived=arrived, payload_bits=payload_bits, state=state)

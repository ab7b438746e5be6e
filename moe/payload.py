r"""What one dispatch or return link carries on the air, and where the proxy's values sit in it.

dmoe's MoEs are small proxies (widths 32-64) of the LLM MoEs the field studies, whose hidden
states hold 2048-4096 values. The *air payload* of a link is sized as the LLM's would be,

``air_bits = 16 + air_width * B``   (a 16-bit scale header, then ``air_width`` codes of ``B`` bits;
the layout of ``dmoe.moe.quantize``),

while the proxy's own quantised token, ``proxy_bits = 16 + width * B`` bits (``to_bits`` of the
proxy's hidden state or expert output), travels *inside* it, spread over the whole payload:

``position_i = floor(i * air_bits / proxy_bits)``,  ``i = 0 .. proxy_bits - 1``.

The positions are strictly increasing (``air_bits >= proxy_bits``), consecutive proxy bits lie
``air_bits / proxy_bits`` apart, and any stretch of ``s`` consecutive air bits holds
``s * proxy_bits / air_bits`` proxy bits to within one. So a burst of bit errors (one failed code
block of a multi-block transport block) hits the proxy's bits at the rate it hits the payload,
and so does an i.i.d. error pattern. The other ``air_bits - proxy_bits`` bits are filler (zeros:
the 5G NR transport-block encoder scrambles what it sends, so their values do not change the link).
With ``air_width == width`` the layout is the identity and the air payload *is* the proxy payload.

The presets (:data:`AIR_PRESETS`, defined in ``dmoe.common`` so that study configs can check
them without TensorFlow) give ``air_width`` and ``B`` of published LLM MoEs in bf16.
They size the payload only: the number of experts K and of layers L stay the proxy's.
"""

import dataclasses

import numpy as np

from dmoe.common.air_presets import AIR_PRESETS, AirPreset, air_preset

from .quantize import payload_bits

__all__ = ["AirPreset", "AIR_PRESETS", "air_preset", "PayloadLayout", "payload_layout"]


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class PayloadLayout:
    r"""Where the ``proxy_bits`` bits of a proxy token sit in an ``air_bits``-bit air payload.

    Parameters
    ----------
    proxy_bits : int
        Bits of the proxy's payload, ``16 + width * B`` (``to_bits(...).shape[-1]``).
    air_bits : int
        Bits sent on the air, ``>= proxy_bits``.

    Example
    -------
    >>> layout = payload_layout(width=64, air_width=4096, bits_per_value=16)
    >>> layout.proxy_bits, layout.air_bits
    (1040, 65552)
    >>> air = layout.embed(np.ones((3, 1040), np.uint8))       # [3, 65552]
    >>> bool(np.all(layout.extract(air) == 1))
    True
    """

    proxy_bits: int
    air_bits: int

    def __post_init__(self):
        proxy = _positive_int("proxy_bits", self.proxy_bits)
        air = _positive_int("air_bits", self.air_bits)
        if air < proxy:
            raise ValueError(f"air_bits must be >= proxy_bits = {proxy} (the proxy's payload "
                             f"must fit in the air payload), got {air}")
        object.__setattr__(self, "proxy_bits", proxy)
        object.__setattr__(self, "air_bits", air)

    @property
    def is_identity(self):
        """True when the air payload is the proxy payload itself."""
        return self.air_bits == self.proxy_bits

    @property
    def positions(self):
        """Air-payload index of each proxy bit: ``floor(i * air_bits / proxy_bits)``.

        Output
        ------
        positions : [proxy_bits], int64, strictly increasing, in ``[0, air_bits)``
        """
        i = np.arange(self.proxy_bits, dtype=np.int64)
        return (i * self.air_bits) // self.proxy_bits

    def _check(self, name, bits, length):
        bits = np.asarray(bits)
        if bits.ndim < 1 or bits.shape[-1] != length:
            raise ValueError(f"{name} must have shape [..., {length}], got {bits.shape}")
        return bits

    def embed(self, proxy):
        """The air payload carrying ``proxy`` at :attr:`positions` (filler bits 0).

        Input
        -----
        proxy : [..., proxy_bits], uint8 0/1

        Output
        ------
        air : [..., air_bits], uint8 0/1
        """
        proxy = self._check("proxy", proxy, self.proxy_bits)
        if self.is_identity:
            return proxy.astype(np.uint8, copy=True)
        air = np.zeros(proxy.shape[:-1] + (self.air_bits,), dtype=np.uint8)
        air[..., self.positions] = proxy
        return air

    def extract(self, air):
        """The proxy payload read back out of a (possibly corrupted) air payload.

        Input
        -----
        air : [..., air_bits], uint8 0/1

        Output
        ------
        proxy : [..., proxy_bits], uint8 0/1
        """
        air = self._check("air", air, self.air_bits)
        return np.ascontiguousarray(air[..., self.positions]).astype(np.uint8, copy=False)

    def apply_bit_errors(self, proxy, bit_errors, rng):
        r"""The proxy bits after ``bit_errors`` i.i.d.-placed errors in each air payload.

        When a link's bit errors are independent of the bit position (the PHY abstraction's
        model of a failed block), given their number ``e`` over the ``air_bits`` bits every set of
        ``e`` positions is equally likely. The number that falls on the proxy's bits is then
        hypergeometric (``proxy_bits`` of ``air_bits``, ``e`` drawn) and those errors sit on
        uniformly chosen proxy bits: exactly what :meth:`embed`, an i.i.d. error pattern with that
        count, and :meth:`extract` give, without building ``[..., air_bits]`` arrays.

        Input
        -----
        proxy : [..., proxy_bits], uint8 0/1
            The proxy payloads sent.
        bit_errors : [...], int
            Bit errors of each air payload, in ``[0, air_bits]``.
        rng : numpy.random.Generator

        Output
        ------
        received : [..., proxy_bits], uint8 0/1
        """
        proxy = self._check("proxy", proxy, self.proxy_bits)
        errors = np.asarray(bit_errors)
        if errors.shape != proxy.shape[:-1]:
            raise ValueError(f"bit_errors must have shape {proxy.shape[:-1]} (one count per "
                             f"payload), got {errors.shape}")
        if errors.size and (np.any(errors < 0) or np.any(errors > self.air_bits)
                            or np.any(errors != np.round(errors))):
            raise ValueError(f"bit_errors must be integers in [0, {self.air_bits}]")
        received = proxy.astype(np.uint8, copy=True)
        flat = received.reshape(-1, self.proxy_bits)
        errors = errors.reshape(-1).astype(np.int64)
        rows = np.flatnonzero(errors > 0)
        if rows.size == 0:
            return received
        on_proxy = rng.hypergeometric(self.proxy_bits, self.air_bits - self.proxy_bits,
                                      errors[rows])
        # The on_proxy[r] smallest of proxy_bits uniform keys mark a uniform subset of that size.
        ranks = np.argsort(np.argsort(rng.random((rows.size, self.proxy_bits)), axis=1), axis=1)
        flat[rows] ^= (ranks < on_proxy[:, None]).astype(np.uint8)
        return received


def payload_layout(width, air_width, bits_per_value):
    """The :class:`PayloadLayout` of a proxy of ``width`` values in ``air_width`` values.

    Parameters
    ----------
    width : int
        Values per token of the proxy model.
    air_width : int
        Values per token on the air, ``>= width``.
    bits_per_value : int
        B, in [2, 24], for both.

    Output
    ------
    layout : PayloadLayout
        ``proxy_bits = 16 + width * B``, ``air_bits = 16 + air_width * B``.
    """
    width = _positive_int("width", width)
    air_width = _positive_int("air_width", air_width)
    if air_width < width:
        raise ValueError(f"air_width must be >= the model's width {width} (the proxy's values "
                         f"travel inside the air payload), got {air_width}")
    return PayloadLayout(payload_bits(width, bits_per_value),
                         payload_bits(air_width, bits_per_value))


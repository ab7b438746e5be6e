r"""Quantise activations to bits for the PHY, and back (per-token scale carried in the payload).

Payload of one token (one row of ``[..., width]``), MSB first:

``[ scale: 16 bits, IEEE float16 | code_0: B bits | code_1: B bits | ... | code_{width-1} ]``

``scale = max_i |v_i|`` rounded *up* to float16; ``Q = 2^(B-1) - 1``;
``code_i = round(v_i / scale * Q) + Q`` (offset binary, ``0 .. 2Q``);
decoding gives ``v_i = (code_i - Q) * scale / Q``. The error of an intact payload is at most half a
step, ``scale / (2 Q)``. Bit errors reach the activations: a flipped code bit moves one value by up to
``2^(B-1)`` steps; a flipped header bit rescales (or sign-flips) the whole token. A header that
decodes to inf/NaN is read as scale 0 (the token decodes to zeros), so corruption never
produces non-finite activations.
"""

import numpy as np

__all__ = ["SCALE_BITS", "payload_bits", "to_bits", "from_bits", "quantization_step"]

SCALE_BITS = 16
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def _check_bits_per_value(bits_per_value):
    if isinstance(bits_per_value, bool) or not isinstance(bits_per_value, (int, np.integer)) \
            or not 2 <= bits_per_value <= 24:
        raise ValueError(f"bits_per_value must be an int in [2, 24], got {bits_per_value!r}")
    return int(bits_per_value)


def payload_bits(width, bits_per_value):
    """Bits of one token's payload: ``16 + width * bits_per_value``.

    Parameters
    ----------
    width : int
        Values per token.
    bits_per_value : int
        B, in [2, 24].

    Output
    ------
    bits : int
    """
    return SCALE_BITS + int(width) * _check_bits_per_value(bits_per_value)


def _scale(values):
    peak = np.minimum(np.max(np.abs(values), axis=-1), _FLOAT16_MAX).astype(np.float32)
    scale = peak.astype(np.float16)
    low = scale.astype(np.float32) < peak
    scale[low] = np.nextafter(scale[low], np.float16(np.inf))
    return scale


def quantization_step(values, bits_per_value):
    """Quantisation step ``scale / Q`` of each token.

    Input
    -----
    values : [..., width], float
    bits_per_value : int

    Output
    ------
    step : [...], float32
    """
    values = np.asarray(values, dtype=np.float32)
    levels = 2 ** (_check_bits_per_value(bits_per_value) - 1) - 1
    return _scale(values).astype(np.float32) / levels


def to_bits(values, bits_per_value=8):
    """Quantise activations to payload bits (layout in the module docstring).

    Input
    -----
    values : [..., width], float (numpy or tf tensor); must be finite
    bits_per_value : int
        B, in [2, 24].

    Output
    ------
    bits : [..., 16 + width * B], uint8, values 0/1

    Example
    -------
    >>> bits = to_bits(np.ones((3, 32), np.float32), 8)
    >>> bits.shape
    (3, 272)
    """
    b = _check_bits_per_value(bits_per_value)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim < 1 or values.shape[-1] < 1:
        raise ValueError(f"values must have shape [..., width] with width >= 1, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must be finite")
    levels = 2 ** (b - 1) - 1
    scale = _scale(values)
    scale32 = scale.astype(np.float32)[..., None]
    ratio = np.divide(values, scale32, out=np.zeros_like(values), where=scale32 > 0)
    codes = (np.clip(np.rint(ratio * levels), -levels, levels) + levels).astype(np.int64)
    shifts = np.arange(b - 1, -1, -1, dtype=np.int64)
    code_bits = ((codes[..., None] >> shifts) & 1).astype(np.uint8)
    code_bits = code_bits.reshape(values.shape[:-1] + (values.shape[-1] * b,))
    header = scale.view(np.uint16).astype(np.int64)[..., None] >> np.arange(15, -1, -1)
    return np.concatenate([(header & 1).astype(np.uint8), code_bits], axis=-1)


def from_bits(bits, bits_per_value=8, width=None):
    """De-quantise payload bits produced by :func:`to_bits` (possibly with bit errors).

    Input
    -----
    bits : [..., 16 + width * B], uint8 or bool, values 0/1
    bits_per_value : int
        B, as used by :func:`to_bits`.
    width : int or None
        Expected width; checked against the payload length when given.

    Output
    ------
    values : [..., width], float32
    """
    b = _check_bits_per_value(bits_per_value)
    bits = np.asarray(bits)
    if bits.ndim < 1 or (bits.shape[-1] - SCALE_BITS) % b or bits.shape[-1] <= SCALE_BITS:
        raise ValueError(f"bits must have shape [..., 16 + width * {b}], got {bits.shape}")
    if bits.size and not np.all((bits == 0) | (bits == 1)):
        raise ValueError("bits must hold only 0 and 1")
    found_width = (bits.shape[-1] - SCALE_BITS) // b
    if width is not None and found_width != width:
        raise ValueError(f"bits must carry width={width} values of {b} bits "
                         f"({payload_bits(width, b)} bits), got {bits.shape[-1]} bits")
    bits = bits.astype(np.int64)
    header = np.sum(bits[..., :SCALE_BITS] << np.arange(15, -1, -1), axis=-1).astype(np.uint16)
    scale = header.view(np.float16).astype(np.float32)
    scale = np.where(np.isfinite(scale), scale, 0.0).astype(np.float32)
    code_bits = bits[..., SCALE_BITS:].reshape(bits.shape[:-1] + (found_width, b))
    codes = np.sum(code_bits << np.arange(b - 1, -1, -1), axis=-1)
    levels = 2 ** (b - 1) - 1
    return ((codes - levels).astype(np.float32) * (scale / levels)[..., None]).astype(np.float32)

r"""Will a point fit in memory? A lower bound, checked before anything is allocated or written.

A point holds two kinds of arrays (``docs/scaling.md``, "Points that cannot fit"):

* per point, whatever the chunking: the drawn examples and their labels, and the token
  positions that are cut into chunks, ``T x (x_row + 8 + 8 + 8)`` bytes;
* per chunk of ``C`` tokens (``C = execution.chunk_size``, else ``T``): the sampled links of
  every round (``[C, L, K, N]``: the complex channel and the SNR of ``dmoe.phy.Links``; the
  return direction and a perfect CSI view share their arrays) and the quantised payloads of both
  phases (``[C, K, P]`` bits, one byte each), ``C x (L K N e + 2 K P)`` bytes with ``e = 12``
  (single) or ``24`` (double precision).

Only arrays that certainly exist together are counted: the CSI views of imperfect CSI, planning
rates, TensorFlow's temporaries and the schemes' own arrays come on top (the peak resident
memory of a digits point on the PHY abstraction, K = 8, L = 2, N = 64 or 16, measured 5.5 or 7.5
times this count). So a point refused here cannot run on this machine, and one accepted may
still need the out-of-memory halving of :func:`~dmoe.cosim.execution.run_chunked`; the chunk
size the message suggests keeps the count within an eighth of the memory. The limit is the
machine's physical memory, or the cgroup's memory limit when that is lower.
"""

import os
from dataclasses import dataclass

__all__ = ["MemoryEstimate", "estimate_point_memory", "check_point_memory", "memory_limit_bytes"]

#: Bytes per link element [C, L, K, N] (the complex channel and the SNR), by precision.
_ELEMENT_BYTES = {"single": 8 + 4, "double": 16 + 8}
#: Per token and point: the example index, its position and its label (int64 each).
_TOKEN_BYTES = 3 * 8


@dataclass(frozen=True)
class MemoryEstimate:
    """Lower bounds on the memory of one point.

    Attributes
    ----------
    point_bytes : int
        Arrays of the whole point, ``[T, ...]``, whatever the chunk size.
    bytes_per_chunk_token : int
        Arrays of a chunk, per token of the chunk.
    chunk_tokens : int
        Tokens per chunk (``execution.chunk_size``, else ``num_tokens``).
    """

    point_bytes: int
    bytes_per_chunk_token: int
    chunk_tokens: int

    @property
    def total_bytes(self):
        """``point_bytes + chunk_tokens * bytes_per_chunk_token``."""
        return self.point_bytes + self.chunk_tokens * self.bytes_per_chunk_token


def memory_limit_bytes():
    """Physical memory of this machine, or the cgroup (v2 or v1) limit if that is lower."""
    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = min(limit, int(text))
    return limit


def estimate_point_memory(config, model):
    """Lower bounds on the memory a point needs (see the module docstring for what is counted).

    Parameters
    ----------
    config : StudyConfig
    model : MoEProtocol
        Supplies K, L, the payload bits of each layer and the size of one test example.

    Output
    ------
    estimate : MemoryEstimate
    """
    tokens = config.num_tokens
    chunk = min(config.execution.chunk_size or tokens, tokens)
    experts, layers = model.num_experts, model.num_layers
    subcarriers = config.channel.num_subcarriers
    payload_bits = max(int(model.payload_bits(layer, config.moe.bits_per_value))
                       for layer in range(layers))
    x_test = model.test_data()[0]
    example_bytes = int(getattr(x_test, "itemsize", 8)) * int(
        max(1, _product(getattr(x_test, "shape", (1,))[1:])))
    per_chunk_token = (layers * experts * subcarriers * _ELEMENT_BYTES[config.execution.precision]
                       + 2 * experts * payload_bits)
    return MemoryEstimate(point_bytes=tokens * (example_bytes + _TOKEN_BYTES),
                          bytes_per_chunk_token=per_chunk_token, chunk_tokens=chunk)


def check_point_memory(config, model, limit_bytes=None):
    """Refuse a point whose arrays cannot fit, naming the keys to change.

    Parameters
    ----------
    config : StudyConfig
    model : MoEProtocol
    limit_bytes : int or None
        Memory available (default :func:`memory_limit_bytes`).

    Raises
    ------
    ValueError
        The point needs more than ``limit_bytes``; the message gives the estimate, the largest
        ``execution.chunk_size`` that would fit and, if the per-point arrays alone do not fit,
        the largest ``num_tokens``.
    """
    limit = memory_limit_bytes() if limit_bytes is None else int(limit_bytes)
    estimate = estimate_point_memory(config, model)
    if estimate.total_bytes <= limit:
        return estimate
    per_token_point = estimate.point_bytes // config.num_tokens
    shape = (f"K = {model.num_experts} experts x N = {config.channel.num_subcarriers} "
             f"subcarriers x L = {model.num_layers} layers")
    head = (f"config key 'num_tokens' = {config.num_tokens}: the point needs at least "
            f"{_size(estimate.total_bytes)} of memory ({shape}, chunks of "
            f"{estimate.chunk_tokens} tokens), more than the {_size(limit)} here")
    # Suggestions keep the count within an eighth of the memory: the rest is for what is not
    # counted (the measured peak is 5.5 to 7.5 times the count).
    budget = limit // 8
    chunk = _largest_chunk(budget - estimate.point_bytes, estimate.bytes_per_chunk_token)
    if chunk is not None:
        raise ValueError(f"{head}; set execution.chunk_size to at most {chunk}")
    most_tokens = budget // (per_token_point + estimate.bytes_per_chunk_token)
    chunk = _largest_chunk(budget - most_tokens * per_token_point,
                           estimate.bytes_per_chunk_token) or 1
    raise ValueError(f"{head}, and its per-token arrays alone need "
                     f"{_size(estimate.point_bytes)}: lower num_tokens to at most {most_tokens} "
                     f"(several points with different seeds instead of one) and set "
                     f"execution.chunk_size to at most {min(chunk, max(most_tokens, 1))}")


def _largest_chunk(room_bytes, bytes_per_token):
    """The largest power of two of tokens whose chunk fits ``room_bytes``, or None."""
    if room_bytes < bytes_per_token:
        return None
    return 1 << ((room_bytes // bytes_per_token).bit_length() - 1)


def _product(values):
    result = 1
    for value in values:
        result *= int(value)
    return result


def _size(num_bytes):
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
        value /= 1024

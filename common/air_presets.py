"""Payload presets of published LLM MoEs: the hidden size each dispatch and return link carries.

A leaf (no numpy, no TensorFlow): ``dmoe.cosim``'s study config checks ``[moe] air_preset``
against it, ``dmoe.moe.payload`` sizes payloads with it. Sources in ``docs/moe.md``.
"""

import dataclasses

__all__ = ["AirPreset", "AIR_PRESETS", "air_preset"]


@dataclasses.dataclass(frozen=True)
class AirPreset:
    """Published sizes of one LLM MoE (hidden states travel in bf16: 16 bits per value).

    Parameters
    ----------
    name : str
        Key in :data:`AIR_PRESETS`.
    hidden_size : int
        d_model of the LLM: values per token on each dispatch and return link (``air_width``).
    bits_per_value : int
        Bits per value on the air (16: bf16-sized values).
    num_layers : int
        Transformer layers of the LLM (for reference only: dmoe keeps the proxy's L).
    num_routed_experts : int
        Routed experts per MoE layer of the LLM (for reference only: dmoe keeps the proxy's K).
    experts_per_token : int
        Routed experts selected per token by the LLM (for reference only).
    source : str
        Where the numbers are published (model card configuration and paper).
    """

    name: str
    hidden_size: int
    bits_per_value: int
    num_layers: int
    num_routed_experts: int
    experts_per_token: int
    source: str

    @property
    def payload_bits(self):
        """Air payload of one token and link: ``16 + hidden_size * bits_per_value`` (the
        16-bit scale header and codes of ``dmoe.moe.quantize``)."""
        return 16 + self.hidden_size * self.bits_per_value


#: The four presets of ``[moe] air_preset`` (sources listed in ``docs/moe.md``).
AIR_PRESETS = {preset.name: preset for preset in (
    AirPreset("mixtral-8x7b", 4096, 16, 32, 8, 2,
              "huggingface.co/mistralai/Mixtral-8x7B-v0.1 config.json (hidden_size 4096); "
              "Jiang et al., Mixtral of Experts, arXiv:2401.04088, Table 1 (dim 4096)"),
    AirPreset("olmoe-1b-7b", 2048, 16, 16, 64, 8,
              "huggingface.co/allenai/OLMoE-1B-7B-0924 config.json (hidden_size 2048); "
              "Muennighoff et al., OLMoE, arXiv:2409.02060"),
    AirPreset("deepseek-v2-lite", 2048, 16, 27, 64, 6,
              "huggingface.co/deepseek-ai/DeepSeek-V2-Lite config.json and model card (hidden "
              "dimension 2048); DeepSeek-AI, DeepSeek-V2, arXiv:2405.04434"),
    AirPreset("qwen1.5-moe-a2.7b", 2048, 16, 24, 60, 4,
              "huggingface.co/Qwen/Qwen1.5-MoE-A2.7B config.json (hidden_size 2048); "
              "qwenlm.github.io/blog/qwen-moe"),
)}


def air_preset(name):
    """The :class:`AirPreset` called ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a key of :data:`AIR_PRESETS`.
    """
    if name not in AIR_PRESETS:
        raise ValueError(f"air_preset must be one of {sorted(AIR_PRESETS)}, got {name!r}")
    return AIR_PRESETS[name]

"""Study configuration: the validated, frozen description of one co-simulation point.

A study is a TOML file (or a dict) whose keys are the fields of :class:`StudyConfig`. Any field
may instead hold a *list* of values: the study is then a sweep, expanded into the Cartesian grid
of all lists (see :func:`dmoe.cosim.expand_study`). Fields whose value is itself a sequence
(``schemes``, ``layer_importance``, ``channel.distances_m``) are swept with a list of lists.

The reference table in ``docs/cosim.md`` is generated from these models by
:func:`config_reference`; edit the ``description`` of a field here, never the doc.
"""

import dataclasses
import json
import types
import typing
from typing import Literal, Optional, Union

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt,
                      create_model, field_validator, model_validator)

from dmoe.common import AIR_PRESETS, EXECUTION_MODES, PRECISIONS
from dmoe.phy.config import ChannelConfig

__all__ = [
    "SCHEMES",
    "ChannelSection",
    "MoESection",
    "PhySection",
    "ExecutionSection",
    "StudyConfig",
    "config_reference",
    "point_key",
    "canonical_dump",
    "config_columns",
]

#: The built-in schemes (``docs/cosim.md``, "Schemes"); ``dmoe.cosim.register_scheme`` adds more.
SCHEMES = (
    "des",
    "jesa",
    "des_layerwise",
    "jesa_layerwise",
    "top_k",
    "top_1",
    "top_2",
    "channel_only",
    "random",
    "weighted_sum",
    "wlr",
    "optimal",
    "des_random_subcarriers",
)

_FROZEN = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


# Settings of [channel] that are left out of point keys and seeds while unset: studies that do
# not use them keep the keys, seeds and rows they had before the settings existed.
_KEYED_WHEN_SET = ("los", "indoor_probability")


def _strict(annotation):
    """The pydantic type of a ``ChannelConfig`` annotation: no silent int/float/bool casts."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        inner = [arg for arg in args if arg is not type(None)]
        return Optional[_strict(inner[0])]
    if origin is tuple:
        return tuple[_strict(args[0]), ...]
    return {int: StrictInt, float: StrictFloat, bool: StrictBool}.get(annotation, annotation)


def _channel_fields():
    """One pydantic field per ``ChannelConfig`` field (``num_rounds`` is L, set by the engine):
    its type, its default, its description, and its allowed values where it has a list."""
    fields = {}
    for item in dataclasses.fields(ChannelConfig):
        if item.name == "num_rounds":
            continue
        choices = item.metadata.get("choices")
        annotation = Literal[choices] if choices else _strict(item.type)  # type: ignore
        extra = {"keyed_when_set": True} if item.name in _KEYED_WHEN_SET else None
        fields[item.name] = (annotation, Field(item.default, description=item.metadata["doc"],
                                               json_schema_extra=extra))
    return fields


class _ChannelBase(BaseModel):
    model_config = _FROZEN

    @model_validator(mode="after")
    def _valid_channel(self):
        # One validator: ChannelConfig's own, on the values as the study gives them.
        try:
            ChannelConfig(**self.model_dump())
        except ValueError as error:
            raise ValueError(str(error).replace("ChannelConfig.", "channel.")) from None
        return self


ChannelSection = create_model("ChannelSection", __base__=_ChannelBase,
                              __doc__="``[channel]``: the ``ChannelConfig`` of ``dmoe.phy`` (its "
                                      "``num_rounds`` is set to L).",
                              **_channel_fields())


class MoESection(BaseModel):
    """``[moe]``: which trained Mixture-of-Experts supplies relevance scores and accuracy."""

    model_config = _FROZEN

    task: Literal["digits", "modrec", "trace", "multidomain"] = Field(
        "digits", description="MoE task of `dmoe.moe` (trained on first use and cached); "
        "`multidomain` routes every position of its token sequences.")
    cache_dir: Optional[str] = Field(
        None, description="Where trained models are cached (default: dmoe.moe's cache).")
    num_experts: Optional[StrictInt] = Field(
        None, ge=2, description="K: experts per layer (and expert nodes). Unset: the task's "
        "default model; set: a model of this size is trained on first use and cached.")
    num_layers: Optional[StrictInt] = Field(
        None, ge=1, description="L: MoE layers (protocol rounds per token). Unset: the task's "
        "default.")
    trace_path: Optional[str] = Field(
        None, description="`trace` task: `.npz` with `gates` or `logits` [tokens, layers, "
        "experts] (unset: the default trace recorded from the digits model).")
    trace_width: Optional[StrictInt] = Field(
        None, ge=1, description="`trace` task: hidden width of the traced model (sets the "
        "payload size).")
    bits_per_value: StrictInt = Field(
        8, ge=2, le=24, description="Bits of each value sent over the air, 2-24 (16: "
        "bf16-sized values). Payload of each dispatch and return link = 16 + air_width x "
        "bits_per_value bits (a 16-bit scale header).")
    air_width: Optional[StrictInt] = Field(
        None, ge=1, json_schema_extra={"keyed_when_set": True}, description="Values per routed token on each dispatch and return link: "
        "they set the payload's airtime, energy, HARQ and BLER. Unset: the model's width. At "
        "least the model's width: the model's own quantised values travel inside the "
        "payload, interleaved over all of it (docs/moe.md).")
    air_preset: Optional[Literal[tuple(AIR_PRESETS)]] = Field(  # type: ignore[valid-type]
        None, json_schema_extra={"keyed_when_set": True}, description="Payload of a "
        "published LLM MoE: sets `air_width` to its hidden size and `bits_per_value` to 16 "
        "(bf16), so leave both unset; K, L and the accuracy stay the model's (docs/moe.md). "
        "Unset or `\"none\"` (to sweep against a preset): `air_width` and `bits_per_value` as "
        "given.")

    @model_validator(mode="before")
    @classmethod
    def _apply_air_preset(cls, data):
        # Resolved here, so a point's key and its row record the payload actually sent.
        if not isinstance(data, dict):
            return data
        if data.get("air_preset") == "none":
            data = {**data, "air_preset": None}
        if data.get("air_preset") not in AIR_PRESETS:
            return data  # no preset, or an unknown name the Literal reports
        name = data["air_preset"]
        preset = AIR_PRESETS[name]
        data = dict(data)
        for key, value in (("air_width", preset.hidden_size),
                           ("bits_per_value", preset.bits_per_value)):
            if data.get(key) is not None and data[key] != value:
                raise ValueError(f"moe.{key} = {data[key]!r} conflicts with moe.air_preset = "
                                 f"{name!r}, which sets it to {value}: leave moe.{key} unset")
            data[key] = value
        return data


class PhySection(BaseModel):
    """``[phy]``: how links are planned and realised."""

    model_config = _FROZEN

    fidelity: Literal["abstraction", "link", "ideal"] = Field(
        "abstraction", description="Link realisation: PHY abstraction (EESM + BLER tables), "
        "bit-true 5G chain (`link`), or `ideal` (every link delivers, airtime and energy as "
        "planned: the PHY-free reference).")
    planning_rate: Literal["shannon", "mcs"] = Field(
        "mcs", description="Rate model every scheme plans with (docs/phy.md, \"Rate models\").")
    on_failure: Literal["drop", "corrupt"] = Field(
        "drop", description="A link that fails after HARQ: `drop` removes the expert "
        "(weights renormalised over what arrived); `corrupt` delivers the payload with its "
        "bit errors.")
    max_retransmissions: StrictInt = Field(3, ge=0, le=16, description="HARQ retransmissions.")
    bler_target: StrictFloat = Field(0.1, gt=0, lt=1, description="Link adaptation: highest MCS "
                               "whose BLER stays under this target.")
    mcs_table: Literal[1, 2] = Field(1, description="5G NR PDSCH MCS table index.")


class ExecutionSection(BaseModel):
    """``[execution]``: how the TensorFlow parts run (recorded with every result). GPU memory
    growth is always on (a per-process setting, not a per-point one: ``docs/scaling.md``)."""

    model_config = _FROZEN

    mode: Literal[EXECUTION_MODES] = Field(  # type: ignore[valid-type]
        "graph", description="TensorFlow execution of the phy and moe functions: eager, "
        "compiled graphs (`tf.function`) or XLA-compiled graphs (`jit_compile=True`; the "
        "Sionna channel draws then give other realisations for the same seed than eager and "
        "graph do, see docs/scaling.md).")
    precision: Literal[PRECISIONS] = Field(  # type: ignore[valid-type]
        "single", description="Float precision of the channel and link simulation: `single` "
        "(float32 / complex64) or `double` (float64 / complex128). The MoE always runs in "
        "float32, the precision it was trained in.")
    device: Optional[str] = Field(
        None, description="TensorFlow device of the point, e.g. `/GPU:0` (unset: the first "
        "GPU if there is one, else the CPU). Recorded with every row.")
    chunk_size: Optional[StrictInt] = Field(
        None, ge=1, description="Most tokens simulated at once (channel draw, links, MoE, "
        "schemes). Unset: the whole point at once. On an out-of-memory error the chunk is "
        "halved and the point restarted; the size used is recorded as `chunk_size`. Each chunk "
        "draws its own random streams, so rows depend on the chunk size used (and on `mode` "
        "for Sionna's channel draws and on `precision`), see docs/scaling.md.")


class StudyConfig(BaseModel):
    """One co-simulation point (a study file with no lists is exactly one point)."""

    model_config = _FROZEN

    seed: StrictInt = Field(1, ge=0, le=2**63 - 1, description="Run seed; every random stream "
                      "of a point is derived from it and the point's settings.")
    num_tokens: StrictInt = Field(256, ge=1, description="Routed tokens pushed through the "
                            "protocol per point: test examples x the model's tokens per example "
                            "(1, or the positions of a `multidomain` sequence; must be a "
                            "multiple of it).")
    schemes: tuple[str, ...] = Field(
        ("des", "jesa", "top_k"), min_length=1,
        description="Schemes compared at every point, on the same tokens and channel draws: "
        + ", ".join(f"`{name}`" for name in SCHEMES) + ", or a name registered with "
        "`dmoe.cosim.register_scheme`.")
    importance: StrictFloat = Field(0.9, ge=0, le=1, description="Importance factor rho: relevance "
                              "required = rho x (sum of the D largest relevances).")
    layer_importance: Optional[Union[Literal["auto"], tuple[StrictFloat, ...]]] = Field(
        None, description="Layer-wise rho (one per MoE layer) for `des_layerwise` and "
        "`jesa_layerwise`, or `\"auto\"`: from the model's layer sensitivity, with the mean "
        "rho_l equal to `importance` (docs/cosim.md).")
    max_experts: StrictInt = Field(2, ge=1, description="D: most experts per token and layer.")
    top_k: Optional[StrictInt] = Field(None, ge=1, description="k of the `top_k` scheme "
                                 "(default: max_experts).")
    weighted_sum_lambda: StrictFloat = Field(0.5, ge=0, le=1, description="lambda of the "
                                       "`weighted_sum` rule (weight of normalised energy).")
    compute_energy_j: StrictFloat = Field(0.0, ge=0, description="Energy of one expert evaluation "
                                    "for one token in J.")
    compute_time_s: StrictFloat = Field(0.0, ge=0, description="Time of one expert evaluation for "
                                  "one token in s.")
    channel: ChannelSection = Field(default_factory=ChannelSection)
    moe: MoESection = Field(default_factory=MoESection)
    phy: PhySection = Field(default_factory=PhySection)
    execution: ExecutionSection = Field(default_factory=ExecutionSection)

    @field_validator("layer_importance")
    @classmethod
    def _rho_range(cls, value):
        if value is not None and value != "auto" and (len(value) == 0 or not all(0 <= v <= 1 for v in value)):
            # `0 <= v <= 1` is False for NaN, so NaN is rejected too.
            raise ValueError("must be a non-empty list of values in [0, 1], one per layer")
        return value

    @model_validator(mode="after")
    def _enough_subcarriers(self):
        # Every selected expert's link needs its own subcarrier in each phase (docs/jesa.md, P2).
        most = max(self.max_experts, self.top_k or 0, 2 if "top_2" in self.schemes else 1)
        if self.channel.num_subcarriers < most:
            raise ValueError(
                f"channel.num_subcarriers = {self.channel.num_subcarriers} is fewer than the "
                f"{most} experts a scheme may select (max_experts, top_k, top_2); each selected "
                "expert's link needs its own subcarrier")
        return self

    @field_validator("schemes")
    @classmethod
    def _registered(cls, value):
        # The registry imports the scheduler (scipy): only when a config is validated.
        from .schemes import registered_schemes
        known = registered_schemes()
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown scheme(s) {unknown}: must be among {', '.join(known)} "
                             "(or registered with dmoe.cosim.register_scheme)")
        return value

    @model_validator(mode="after")
    def _layerwise_needs_vector(self):
        from .schemes import get_scheme
        needs = [s for s in self.schemes if get_scheme(s).layerwise]
        if needs and self.layer_importance is None:
            raise ValueError(f"schemes {needs} need `layer_importance` (one rho per layer)")
        if len(set(self.schemes)) != len(self.schemes):
            raise ValueError(f"schemes must not repeat a name, got {list(self.schemes)}")
        return self


def canonical_dump(config):
    """The config as the JSON-ready dict that keys and seeds are made of.

    Settings declared ``keyed_when_set`` are left out while unset, so that adding such a
    setting leaves every existing point's key, seeds and rows as they were.

    Parameters
    ----------
    config : StudyConfig

    Output
    ------
    dump : dict
    """
    dump = config.model_dump(mode="json")
    for name, info in StudyConfig.model_fields.items():
        section = info.annotation
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            continue
        for field_name, field_info in section.model_fields.items():
            keyed_when_set = (field_info.json_schema_extra or {}).get("keyed_when_set")
            if keyed_when_set and dump[name][field_name] is None:
                del dump[name][field_name]
    return dump


def point_key(config):
    """Canonical key of a point: its resolved config as sorted compact JSON.

    Parameters
    ----------
    config : StudyConfig

    Output
    ------
    key : str
    """
    return json.dumps(canonical_dump(config), sort_keys=True, separators=(",", ":"))


def config_columns(config):
    """The point's settings as flat ``{dotted key: scalar}`` columns (lists as JSON text).

    Parameters
    ----------
    config : StudyConfig

    Output
    ------
    columns : dict
        ``schemes`` is left out (every row names its own scheme); unset values are ``""``.
    """
    columns = {}

    def walk(mapping, prefix):
        for name, value in mapping.items():
            if name == "schemes":
                continue
            if isinstance(value, dict):
                walk(value, prefix + name + ".")
            elif isinstance(value, (list, tuple)):
                columns[prefix + name] = json.dumps(list(value))
            elif value is None:
                columns[prefix + name] = ""
            else:
                columns[prefix + name] = value
    walk(config.model_dump(mode="json"), "")
    return columns


def _unwrap(annotation):
    """``int`` for ``StrictInt`` (``Annotated[int, Strict()]``), unchanged otherwise."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _type_text(info):
    annotation = _unwrap(info.annotation)
    args = [_unwrap(a) for a in typing.get_args(annotation) if a is not type(None)]
    optional = len(args) < len(typing.get_args(annotation))
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(f"`{_literal(v)}`" for v in typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) > 1:
        # e.g. `"auto"` or a list of values
        parts = []
        for arg in args:
            if typing.get_origin(arg) is Literal:
                parts.append(", ".join(f"`{_literal(v)}`" for v in typing.get_args(arg)))
            elif typing.get_origin(arg) is tuple:
                parts.append(f"list of {_unwrap(typing.get_args(arg)[0]).__name__}")
            else:
                parts.append(getattr(arg, "__name__", str(arg)))
        return " or ".join(parts) + (" or unset" if optional else "")
    if optional and len(args) == 1:
        annotation = args[0]
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return ("one of " + ", ".join(f"`{_literal(v)}`" for v in typing.get_args(annotation))
                + (" or unset" if optional else ""))
    if origin is tuple:
        inner = _unwrap(typing.get_args(annotation)[0])
        if typing.get_origin(inner) is Literal:
            text = "list of scheme names"
        else:
            text = f"list of {inner.__name__}"
    else:
        text = getattr(annotation, "__name__", str(annotation))
    return text + (" or unset" if optional else "")


def _literal(value):
    return f"{value:g}" if isinstance(value, float) else str(value).lower() \
        if isinstance(value, bool) else str(value)


def _constraints(info):
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >="}
    parts = []
    for item in info.metadata:
        for attribute, symbol in words.items():
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{symbol} {value:g}" if isinstance(value, float)
                             else f"{symbol} {value}")
    return ", ".join(parts)


def _default_text(info):
    if info.default_factory is not None:
        return ""
    value = info.default
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else f"{v}" for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def config_reference():
    """The study-file reference as Markdown, generated from the models (``docs/cosim.md``).

    Output
    ------
    text : str
        One table per section: key, type / allowed values, default, range, meaning.
    """
    sections = [("top level", StudyConfig, "")]
    for name, info in StudyConfig.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            sections.append((f"[{name}]", info.annotation, name + "."))
    lines = []
    for title, model, prefix in sections:
        lines += [f"### {title}", "", (model.__doc__ or "").strip(), "",
                  "| key | type | default | range | meaning |",
                  "|---|---|---|---|---|"]
        for name, info in model.model_fields.items():
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                continue
            description = (info.description or "").replace("|", "\\|")
            lines.append(f"| `{prefix}{name}` | {_type_text(info)} | {_default_text(info)} | "
                         f"{_constraints(info)} | {description} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m dmoe.cosim.config  -> the reference of docs/cosim.md
    print(config_reference())

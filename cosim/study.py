"""Studies: loading a TOML file, expanding its lists into a grid of points, seeding each point.

A *study* is a :class:`~dmoe.cosim.config.StudyConfig` in which any field may hold a list of
values; :func:`expand_study` turns it into the Cartesian grid of :class:`Point` objects, in a
fixed order (fields in declaration order, values in the order written). Every point carries a
canonical key (its full resolved config as sorted JSON) and a seed derived from the run seed and
that key by SHA-256, so a point's results do not depend on which process runs it, or when.
"""

import copy
import hashlib
import itertools
import json
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .config import StudyConfig, point_key
from .seeding import derive_seed

__all__ = [
    "Point",
    "Study",
    "load_study",
    "default_study_path",
    "expand_study",
    "derive_seed",
    "dump_toml",
]


@dataclass(frozen=True)
class Point:
    """One point of a sweep.

    Attributes
    ----------
    index : int
        Position in the grid (0-based, fixed by the study).
    config : StudyConfig
        The fully resolved, validated configuration of this point.
    swept : dict
        ``{dotted key: value}`` of the fields that vary across the study.
    key : str
        Canonical key: the resolved config as sorted, compact JSON.
    point_id : str
        First 16 hex digits of the SHA-256 of ``key`` (file name in the result store).
    seed : int
        Point seed, ``derive_seed(config.seed, key)``.
    """

    index: int
    config: StudyConfig
    swept: dict = field(default_factory=dict)
    key: str = ""
    point_id: str = ""
    seed: int = 0


@dataclass(frozen=True)
class Study:
    """A loaded study: the raw mapping, its sweep axes and the expanded points.

    Attributes
    ----------
    raw : dict
        The study as written (after TOML parsing), lists included.
    axes : dict
        ``{dotted key: tuple of values}`` for every swept field, in grid order.
    points : list of Point
        The grid, ``prod(len(values))`` points.
    source : str
        Where the study came from (a path, ``"<default>"`` or ``"<dict>"``).
    """

    raw: dict
    axes: dict
    points: list
    source: str = "<dict>"

    def resolved(self):
        """The study with every default filled in and the sweep lists kept (a plain dict)."""
        resolved = self.points[0].config.model_dump(mode="json")
        for dotted, values in self.axes.items():
            _set(resolved, dotted, list(values))
        return resolved


def default_study_path():
    """The shipped default study (package data ``dmoe/cosim/data/default.toml``)."""
    return resources.files("dmoe.cosim").joinpath("data/default.toml")


def load_study(source=None):
    """Load, validate and expand a study.

    Parameters
    ----------
    source : str, path, dict or None
        A TOML file, an already parsed mapping, or ``None`` for the shipped default study.

    Output
    ------
    study : Study

    Raises
    ------
    ValueError
        Unreadable TOML, unknown key, wrong type, value out of range, empty sweep list: one
        message naming the key and what is allowed.
    FileNotFoundError
        ``source`` is a path that does not exist.

    Example
    -------
    >>> study = load_study({"importance": [0.5, 1.0], "num_tokens": 32})
    >>> len(study.points), study.axes
    (2, {'importance': (0.5, 1.0)})
    """
    if source is None:
        raw = tomllib.loads(default_study_path().read_text(encoding="utf-8"))
        name = "<default>"
    elif isinstance(source, dict):
        raw, name = copy.deepcopy(source), "<dict>"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"study file {str(path)!r} does not exist")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: not valid TOML: {error}") from None
        name = str(path)
    axes = _find_axes(raw, StudyConfig, "")
    return Study(raw=raw, axes=axes, points=expand_study(raw, axes), source=name)


def expand_study(raw, axes=None):
    """Expand a study mapping into its grid of points.

    Parameters
    ----------
    raw : dict
        Study mapping; lists on scalar fields (lists of lists on sequence fields) are axes.
    axes : dict or None
        Precomputed axes (as found by :func:`load_study`).

    Output
    ------
    points : list of Point
        Cartesian product of the axes, the last axis varying fastest.
    """
    if axes is None:
        axes = _find_axes(raw, StudyConfig, "")
    for dotted, values in axes.items():
        # A repeated value would make two identical points (same id, rows stored twice).
        seen = [json.dumps(value, sort_keys=True) for value in values]
        if len(set(seen)) != len(seen):
            raise ValueError(f"config key {dotted!r} lists a value more than once: {list(values)}")
    points = []
    for index, combination in enumerate(itertools.product(*axes.values())):
        concrete = copy.deepcopy(raw)
        swept = dict(zip(axes.keys(), combination))
        for dotted, value in swept.items():
            _set(concrete, dotted, value)
        config = _validate(concrete, swept)
        key = point_key(config)
        points.append(Point(
            index=index, config=config, swept=swept, key=key,
            point_id=hashlib.sha256(key.encode("utf-8")).hexdigest()[:16],
            seed=derive_seed(config.seed, key),
        ))
    return points


def dump_toml(mapping):
    """Write a nested mapping of scalars and lists as TOML text (enough for study files).

    Parameters
    ----------
    mapping : dict
        Top-level scalars and lists, and sub-mappings written as ``[section]`` tables.

    Output
    ------
    text : str
        TOML that :mod:`tomllib` reads back to ``mapping`` (``None`` values are omitted).
    """
    lines, tables = [], []
    for key, value in mapping.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines.append("")
        lines.append(f"[{name}]")
        for key, value in table.items():
            if isinstance(value, dict):
                raise ValueError(f"dump_toml: nested table {name}.{key} is not supported")
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise ValueError(f"dump_toml: cannot write {value!r}")


def _is_sequence_field(annotation):
    """True for fields whose single value is itself a sequence (tuple[...] or Optional of it)."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) in (tuple, list):
            return True
    return False


def _section_model(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _find_axes(raw, model, prefix):
    if not isinstance(raw, dict):
        raise ValueError(f"config section '{prefix.rstrip('.')}' must be a table, got {raw!r}")
    axes = {}
    for key in raw:
        if key not in model.model_fields:
            where = f"in [{prefix.rstrip('.')}] " if prefix else ""
            raise ValueError(f"unknown config key '{prefix}{key}' {where}(allowed: "
                             f"{', '.join(model.model_fields)})")
    # Declaration order, not file order: the grid order is a property of the study's content.
    for name, info in model.model_fields.items():
        if name not in raw:
            continue
        value, dotted = raw[name], prefix + name
        section = _section_model(info.annotation)
        if section is not None:
            if isinstance(value, list):
                raise ValueError(f"config key '{dotted}' is a table; sweep its fields "
                                 f"(e.g. {dotted}.{next(iter(section.model_fields))} = [...]) "
                                 "instead of giving a list of tables")
            axes.update(_find_axes(value, section, dotted + "."))
            continue
        if not isinstance(value, list):
            continue
        if _is_sequence_field(info.annotation):
            if value and all(isinstance(item, list) for item in value):
                axes[dotted] = tuple(value)
            continue
        if len(value) == 0:
            raise ValueError(f"config key '{dotted}' is an empty sweep list; give one value "
                             "or a non-empty list of values")
        axes[dotted] = tuple(value)
    return axes


def _set(mapping, dotted, value):
    *sections, leaf = dotted.split(".")
    for section in sections:
        mapping = mapping.setdefault(section, {})
    mapping[leaf] = value


def _validate(concrete, swept):
    try:
        return StudyConfig.model_validate(concrete)
    except ValidationError as error:
        raise ValueError(_describe(error, swept)) from None


def _describe(error, swept):
    """One line per problem: the dotted key, the value given, what is allowed."""
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
        indices = [part for part in item["loc"] if isinstance(part, int)]
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown config key '{location}'")
            continue
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if not location:
            problems.append(f"config: {message}")
            continue
        where = f"'{location}'" + (f" (item {indices[0]})" if indices else "")
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        problems.append(f"config key {where}{shown}: {message}")
    context = ""
    if swept:
        context = " [at sweep point " + ", ".join(f"{k}={v!r}" for k, v in swept.items()) + "]"
    return "; ".join(problems) + context

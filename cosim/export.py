"""Results as labelled arrays: a run directory as an ``xarray.Dataset``, netCDF or CSV.

The Parquet table has one row per point and scheme. :func:`to_xarray` lays the same numbers
on the study's grid: one dimension per swept key (in the order of the study, values in the
order written), then ``scheme``; every metric and run column is a variable over those
dimensions; the settings that do not vary, and the run metadata, are in ``attrs``. A point that
has not finished yet is NaN (numbers) or ``""`` (text) in every variable.

xarray is optional: ``pip install 'dmoe[xarray]'`` (xarray and the h5netcdf netCDF writer).
"""

import json
from pathlib import Path

import numpy as np

__all__ = ["to_xarray", "results_to_xarray", "export_results", "EXPORT_FORMATS"]

#: File formats of :func:`export_results` and ``dmoe export``, with their file suffix.
EXPORT_FORMATS = {"netcdf": ".nc", "csv": ".csv"}

_INSTALL_HINT = ("pip install 'dmoe[xarray]' (or: pip install xarray h5netcdf)")


def _xarray():
    try:
        import xarray
    except ImportError as error:
        raise ImportError(f"exporting results as labelled arrays needs xarray: "
                          f"{_INSTALL_HINT}") from error
    return xarray


def _column_value(value):
    """A swept value as the results table stores it (``config_columns``: lists as JSON)."""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return "" if value is None else value


def _config_keys(config, prefix=""):
    """The dotted keys of a resolved study config (the table's setting columns)."""
    keys = set()
    for name, value in config.items():
        if isinstance(value, dict):
            keys |= _config_keys(value, prefix + name + ".")
        else:
            keys.add(prefix + name)
    return keys


def _attr(value):
    # netCDF attributes hold text and numbers only: anything structured goes in as JSON.
    if isinstance(value, (str, int, float, np.integer, np.floating)) and \
            not isinstance(value, bool):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def results_to_xarray(table, metadata, manifest):
    """Lay a results table on its study's grid.

    Parameters
    ----------
    table : pandas.DataFrame
        The results table (one row per point and scheme), as :func:`read_results` returns it.
    metadata : dict
        Run metadata (``versions``, ``seed``, ``config``, ...).
    manifest : dict
        The run directory's ``manifest.json``: ``axes`` (``{dotted key: values}``) and
        ``points`` (``index``, ``seed`` of each point).

    Output
    ------
    dataset : xarray.Dataset
        Dimensions: the swept keys, then ``scheme``. Variables: every metric and run column,
        float64 (NaN where a point has not finished), int64, or text (``""`` where missing;
        an int column with missing points becomes float64). ``attrs``: the settings that do
        not vary (``setting.<key>``, as in the table), ``seed``, ``versions``, ``config``
        (JSON text) and the other run metadata.

    Raises
    ------
    ValueError
        A row whose ``point_seed`` is not a point of ``manifest``.
    """
    xr = _xarray()
    axes = {key: [_column_value(v) for v in values]
            for key, values in manifest.get("axes", {}).items()}
    config = metadata.get("config") or manifest.get("study") or {}
    schemes = list(dict.fromkeys(table["scheme"])) if len(table) else list(
        config.get("schemes", []))
    dims = list(axes) + ["scheme"]
    shape = tuple(len(values) for values in axes.values()) + (len(schemes),)

    # Each row goes to the cell of its point (found by seed: the grid is the Cartesian product
    # of the axes in order, last axis fastest) and its scheme; no float matching of values.
    cell_of_seed = {int(p["seed"]): np.unravel_index(int(p["index"]), shape[:-1])
                    for p in manifest.get("points", [])}
    scheme_index = {scheme: i for i, scheme in enumerate(schemes)}
    cells = []
    for seed, scheme in zip(table.get("point_seed", []), table.get("scheme", [])):
        if int(seed) not in cell_of_seed:
            raise ValueError(f"table row with point_seed={int(seed)} is not a point of the "
                             "manifest")
        cells.append(tuple(cell_of_seed[int(seed)]) + (scheme_index[scheme],))
    index = tuple(np.array(axis, dtype=np.intp) for axis in zip(*cells)) if cells else None

    settings = _config_keys(config) - set(axes)
    from .metrics import METRIC_COLUMNS

    variables = {}
    setting_attrs = {}
    for column in table.columns:
        if column in axes or column == "scheme":
            continue
        values = table[column].to_numpy()
        if column in settings:
            unique = set(table[column].astype(str))
            if len(unique) == 1:
                setting_attrs[f"setting.{column}"] = _attr(values[0].item()
                                                           if hasattr(values[0], "item")
                                                           else values[0])
                continue
        complete = len(cells) == int(np.prod(shape))
        if values.dtype.kind in "iub" and complete:
            grid = np.zeros(shape, dtype=values.dtype)
        elif values.dtype.kind in "iufb":
            grid = np.full(shape, np.nan)
        else:
            values = np.array([str(v) for v in values], dtype=object)
            grid = np.full(shape, "", dtype=object)
        if index is not None:
            grid[index] = values
        attrs = {"description": METRIC_COLUMNS[column]} if column in METRIC_COLUMNS else {}
        variables[column] = (dims, grid, attrs)

    coords = {key: (key, _coordinate(values, table.get(key))) for key, values in axes.items()}
    coords["scheme"] = ("scheme", np.array(schemes, dtype=object))
    attrs = {key: _attr(value) for key, value in metadata.items()}
    attrs.update(setting_attrs)
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _coordinate(values, column):
    """Axis values with the dtype of their table column (``23`` stored as ``23.0``)."""
    if column is not None and column.dtype.kind in "iufb":
        return np.asarray(values, dtype=column.dtype)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values)
    return np.array([str(v) for v in values], dtype=object)


def to_xarray(directory):
    """A run directory's results as an ``xarray.Dataset`` (see :func:`results_to_xarray`).

    Parameters
    ----------
    directory : str or path
        A run directory written by ``dmoe run``.

    Output
    ------
    dataset : xarray.Dataset
        The swept keys and ``scheme`` as dimensions, the metrics as variables, the run
        metadata in ``attrs``. Same as ``read_results(directory, as_="xarray")``.

    Example
    -------
    >>> ds = to_xarray("results/channels")                                # doctest: +SKIP
    >>> ds["accuracy"].sel(scheme="des").to_series()                      # doctest: +SKIP
    """
    from .store import read_results

    return read_results(directory, as_="xarray")


def export_results(directory, format="netcdf", out=None):
    """Write a run directory's results as netCDF or CSV.

    Parameters
    ----------
    directory : str or path
        A run directory written by ``dmoe run``.
    format : str
        ``"netcdf"`` (the :func:`to_xarray` dataset, netCDF-4 via h5netcdf where installed)
        or ``"csv"`` (the dataset flattened: one row per grid cell, the dimensions first).
    out : str or path or None
        Output file; None writes ``DIR/results.nc`` or ``DIR/results.csv``.

    Output
    ------
    path : pathlib.Path
        The file written.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {sorted(EXPORT_FORMATS)}, got {format!r}")
    dataset = to_xarray(directory)
    path = Path(out) if out is not None else Path(directory) / f"results{EXPORT_FORMATS[format]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "netcdf":
        dataset.to_netcdf(path, engine=_netcdf_engine())
    else:
        frame = dataset.to_dataframe().reset_index()
        frame.to_csv(path, index=False)
    return path


def _netcdf_engine():
    for engine, module in (("h5netcdf", "h5netcdf"), ("netcdf4", "netCDF4")):
        try:
            __import__(module)
            return engine
        except ImportError:
            continue
    return "scipy"  # netCDF-3: text variables are stored as character arrays

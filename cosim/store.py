"""The resumable result store: one Parquet file per finished point, plus a manifest.

Layout of a run directory::

    DIR/manifest.json        the resolved study, its points (id, seed, swept values), metadata
    DIR/config.toml          the resolved study as TOML (rerun it with ``dmoe run DIR/config.toml``)
    DIR/points/<id>.parquet  the rows of one finished point (one row per scheme)
    DIR/results.parquet      the whole table: the point files concatenated in grid order
    DIR/figures/             written by ``dmoe plot DIR``

Every file is written to a temporary name in the same directory and moved into place with
``os.replace`` (atomic on POSIX and Windows), so an interrupted run leaves either a complete point
file or none: a half-written point is never read as done, and a rerun skips exactly the points
whose files exist. Why Parquet rather than netCDF: the results are a tidy table (one row per
point and scheme, mixed string and numeric columns), which is Parquet's model; netCDF/xarray
wants a dense labelled array, which a grid with per-scheme rows and string-valued axes (channel
model, scheme) fits badly. Parquet is also what pandas, polars, DuckDB and Spark read natively.
"""

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .study import dump_toml

__all__ = ["ResultStore", "read_results"]

_METADATA_KEY = b"dmoe"


class ResultStore:
    """A run directory holding the results of one study.

    Parameters
    ----------
    directory : str or path
        The run directory (``--out``); created by :meth:`prepare`.

    Example
    -------
    >>> store = ResultStore("results/default")          # doctest: +SKIP
    >>> store.prepare(study, metadata)                   # doctest: +SKIP
    >>> [p for p in study.points if not store.is_done(p)]   # doctest: +SKIP
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        self.points_dir = self.directory / "points"

    @property
    def manifest_path(self):
        return self.directory / "manifest.json"

    @property
    def results_path(self):
        return self.directory / "results.parquet"

    def prepare(self, study, metadata):
        """Create the directory and manifest, or check that it holds this very study.

        Parameters
        ----------
        study : Study
            The expanded study.
        metadata : dict
            Run-level metadata (versions, device, execution mode), JSON-serialisable.

        Raises
        ------
        ValueError
            ``directory`` exists and holds the results of a different study.
        """
        manifest = {
            "study": study.resolved(),
            "source": study.source,
            "axes": {key: list(values) for key, values in study.axes.items()},
            "points": [
                {"index": p.index, "point_id": p.point_id, "seed": p.seed,
                 "swept": p.swept}
                for p in study.points
            ],
            "metadata": metadata,
        }
        if self.manifest_path.exists():
            existing = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            old_ids = [p["point_id"] for p in existing.get("points", [])]
            if old_ids != [p.point_id for p in study.points]:
                raise ValueError(
                    f"--out {str(self.directory)!r} holds the results of a different study; "
                    "choose another directory or delete it")
        elif self.directory.exists() and any(self.directory.iterdir()):
            raise ValueError(f"--out {str(self.directory)!r} exists, is not empty and is not a "
                             "dmoe run directory; choose another directory")
        self.points_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.points_dir.glob(".*.tmp"):
            stale.unlink()  # leftovers of an interrupted write: never read, safe to remove
        _atomic_write_text(self.manifest_path, json.dumps(manifest, indent=1, default=str))
        _atomic_write_text(self.directory / "config.toml", dump_toml(study.resolved()))

    def point_path(self, point):
        return self.points_dir / f"{point.point_id}.parquet"

    def is_done(self, point):
        """True if the point's file exists (it is only ever created complete)."""
        return self.point_path(point).is_file()

    def write_point(self, point, rows, metadata):
        """Store the rows of one finished point atomically.

        Parameters
        ----------
        point : Point
        rows : list of dict
            One dict of scalar columns per scheme.
        metadata : dict
            Point metadata (seed, key, timings), kept in the Parquet file's schema metadata.
        """
        table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}),
             _METADATA_KEY: json.dumps(metadata, default=str).encode("utf-8")})
        _atomic_write_parquet(self.point_path(point), table)

    def load_table(self, points=None):
        """The finished points' rows concatenated in grid order (a pandas DataFrame).

        Parameters
        ----------
        points : list of Point or None
            Restrict to these points (default: every point file listed in the manifest).
        """
        if points is None:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            ids = [p["point_id"] for p in manifest["points"]]
        else:
            ids = [p.point_id for p in points]
        paths = [self.points_dir / f"{pid}.parquet" for pid in ids]
        frames = [pq.read_table(path).to_pandas() for path in paths if path.is_file()]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def finalize(self, points, metadata):
        """Write ``results.parquet`` (all points, grid order) with run metadata attached."""
        table = pa.Table.from_pandas(self.load_table(points), preserve_index=False)
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}),
             _METADATA_KEY: json.dumps(metadata, default=str).encode("utf-8")})
        _atomic_write_parquet(self.results_path, table)
        return self.results_path


def read_results(directory, as_="pandas"):
    """Read a run directory's results table and metadata.

    Parameters
    ----------
    directory : str or path
        A run directory written by ``dmoe run``.
    as_ : str
        ``"pandas"`` (default): the table and the metadata; ``"xarray"``: one
        ``xarray.Dataset`` on the study's grid (:func:`dmoe.cosim.export.results_to_xarray`;
        needs ``pip install 'dmoe[xarray]'``).

    Output
    ------
    table : pandas.DataFrame
        One row per point and scheme (``results.parquet`` if the run finished, else the finished
        points so far).
    metadata : dict
        Run metadata (config, seed, versions, execution mode, device).
    dataset : xarray.Dataset
        With ``as_="xarray"``, instead of both: the metrics on the grid of swept keys and
        schemes, the metadata in ``attrs``.
    """
    if as_ not in ("pandas", "xarray"):
        raise ValueError(f"as_ must be 'pandas' or 'xarray', got {as_!r}")
    store = ResultStore(directory)
    if not store.manifest_path.is_file():
        raise FileNotFoundError(f"{str(directory)!r} is not a dmoe run directory "
                                "(no manifest.json)")
    manifest = json.loads(store.manifest_path.read_text(encoding="utf-8"))
    if store.results_path.is_file():
        table = pq.read_table(store.results_path)
        raw = (table.schema.metadata or {}).get(_METADATA_KEY)
        metadata = json.loads(raw) if raw else manifest.get("metadata", {})
        table = table.to_pandas()
    else:
        table, metadata = store.load_table(), manifest.get("metadata", {})
    if as_ == "xarray":
        from .export import results_to_xarray
        return results_to_xarray(table, metadata, manifest)
    return table, metadata


def _atomic_write_text(path, text):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_parquet(path, table):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The resumable result store: one Parquet file per finished point, plus a manifest.

Layout of a run directory::

    DIR/manifest.json        the resolved study, its points (id, seed, swept values), metadata
    DIR/config.toml          the resolved study as TOML (rerun it with ``dmoe run DIR/config.toml``)
    DIR/points/<id>.parquet  the rows of one finished point (one row per scheme)
    DIR/points/corrupt/      point files that failed verification, set aside (never read)
    DIR/results.parquet      the whole table: the point files concatenated in grid order
    DIR/figures/             written by ``dmoe plot DIR``
    DIR/.dmoe.lock           held (``flock``) by the one process writing into DIR

Every file is written to a temporary name in the same directory and moved into place with
``os.replace`` (atomic on POSIX and Windows), so an interrupted run leaves either a complete point
file or none: a half-written point is never read as done. A rerun does not trust a point file
because it exists: :meth:`ResultStore.verify` opens every one and checks that its metadata names
this point (point id and the SHA-256 of its config) and that it holds one row per scheme; a file
that fails (truncated, garbage, another point's rows copied over it) is moved to
``points/corrupt/`` and the point runs again. :meth:`ResultStore.finalize` checks the whole table
for exactly one row per (point, scheme) before writing it.

One process writes into a run directory at a time: :meth:`ResultStore.lock` holds an exclusive
``flock`` on ``DIR/.dmoe.lock`` (released by the kernel when the holder exits, however it dies)
and records the holder's pid and host in it, so a second run can say who holds it. Temporary
files carry their writer's pid in their name (``.<name>.pid<PID>.<random>.tmp``); a run removes
only those whose writer is no longer alive. Files are created with the permissions the umask
allows (``0o666 & ~umask``), like any file ``open`` creates.

Why Parquet rather than netCDF: the results are a tidy table (one row per
point and scheme, mixed string and numeric columns), which is Parquet's model; netCDF/xarray
wants a dense labelled array, which a grid with per-scheme rows and string-valued axes (channel
model, scheme) fits badly. Parquet is also what pandas, polars, DuckDB and Spark read natively.
"""

import errno
import hashlib
import json
import os
import re
import signal
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .study import dump_toml

__all__ = ["ResultStore", "RunDirectoryBusy", "read_results", "check_output_directory"]

_METADATA_KEY = b"dmoe"
_LOCK_NAME = ".dmoe.lock"
_TEMPORARY = re.compile(r"^\..+\.pid(\d+)\.[^.]*\.tmp$")


class RunDirectoryBusy(ValueError):
    """Another process holds the run directory's lock (``dmoe run`` exits with status 2).

    Attributes
    ----------
    holder : str
        What the lock file says about its holder (``"pid 1234 on host"``), or ``"unknown"``.
    """

    def __init__(self, directory, holder):
        self.holder = holder
        super().__init__(
            f"--out {str(directory)!r} is in use by another dmoe run ({holder}); wait for it "
            "to finish (dmoe run --wait waits for it) or choose another directory")


def check_output_directory(directory, option="--out"):
    """Refuse a directory that cannot become a writable run or figure directory, writing nothing.

    Parameters
    ----------
    directory : str or path
    option : str
        How the user gave it (named in the message).

    Raises
    ------
    ValueError
        ``directory`` is an existing file, lies under a file, or its nearest existing ancestor
        is not a writable directory.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {str(directory)!r} is a file, not a directory")
    ancestor = path
    while not ancestor.exists():
        if ancestor.is_symlink():
            raise ValueError(f"{option} {str(directory)!r}: {str(ancestor)!r} is a dangling "
                             "symbolic link")
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor != path and ancestor.exists() and not ancestor.is_dir():
        raise ValueError(f"{option} {str(directory)!r} lies under {str(ancestor)!r}, which is a "
                         "file, not a directory")
    if ancestor.exists() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {str(directory)!r}: {str(ancestor)!r} is not writable")


class ResultStore:
    """A run directory holding the results of one study.

    Parameters
    ----------
    directory : str or path
        The run directory (``--out``); created by :meth:`lock` or :meth:`prepare`.

    Example
    -------
    >>> store = ResultStore("results/default")          # doctest: +SKIP
    >>> with store.lock():                               # doctest: +SKIP
    ...     store.prepare(study, metadata)
    ...     set_aside = store.verify(study.points)
    ...     todo = [p for p in study.points if not store.is_done(p)]
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

    @property
    def lock_path(self):
        return self.directory / _LOCK_NAME

    @property
    def corrupt_dir(self):
        return self.points_dir / "corrupt"

    # ------------------------------------------------------------------------ one writer

    @contextmanager
    def lock(self, wait=False, log=None):
        """Hold the directory's exclusive lock for the block (creating the directory).

        Parameters
        ----------
        wait : bool
            If another process holds the lock, wait until it is released instead of raising.
        log : callable or None
            Receives one line when waiting starts.

        Raises
        ------
        RunDirectoryBusy
            Another process holds the lock and ``wait`` is false (the message names it).
        ValueError
            The directory cannot be created or written (named as ``--out``).
        """
        try:
            import fcntl
        except ImportError:  # not POSIX: no advisory locks; one writer is the user's business
            yield self
            return
        self._refuse_foreign_directory()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise ValueError(f"--out {str(self.directory)!r}: cannot create the run directory "
                             f"({error.strerror or error})") from None
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = _read_holder(descriptor)
                if not wait:
                    raise RunDirectoryBusy(self.directory, holder) from None
                if log is not None:
                    log(f"waiting for {holder} to release {str(self.directory)!r}")
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            yield self
        finally:
            os.close(descriptor)  # releases the flock

    def _refuse_foreign_directory(self):
        if self.directory.is_dir() and not self.manifest_path.exists() and any(
                entry.name != _LOCK_NAME for entry in self.directory.iterdir()):
            raise ValueError(f"--out {str(self.directory)!r} exists, is not empty and is not a "
                             "dmoe run directory; choose another directory")

    # ------------------------------------------------------------------------ manifest

    def read_manifest(self):
        """The manifest as a dict.

        Raises
        ------
        ValueError
            The manifest is not valid JSON (the message names the file).
        """
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{str(self.manifest_path)!r} is not a valid dmoe manifest "
                             f"({error}); delete the run directory or choose another") from None

    def prepare(self, study, metadata):
        """Create the directory and manifest, or check that it holds this very study.

        Call it while holding :meth:`lock` (``run_study`` does): it also removes the temporary
        files of writers that are no longer alive.

        Parameters
        ----------
        study : Study
            The expanded study.
        metadata : dict
            Run-level metadata (versions, device, execution mode), JSON-serialisable.

        Raises
        ------
        ValueError
            ``directory`` exists and holds the results of a different study, or another
            directory's files, or its manifest is not valid JSON.
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
            existing = self.read_manifest()
            old_ids = [p.get("point_id") for p in existing.get("points", [])]
            if old_ids != [p.point_id for p in study.points]:
                raise ValueError(
                    f"--out {str(self.directory)!r} holds the results of a different study; "
                    "choose another directory or delete it")
        else:
            self._refuse_foreign_directory()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # The manifest first: a directory holding anything of ours is recognised as ours.
            _atomic_write_text(self.manifest_path, json.dumps(manifest, indent=1, default=str))
            self.points_dir.mkdir(exist_ok=True)
        except OSError as error:
            raise ValueError(f"--out {str(self.directory)!r}: cannot create the run directory "
                             f"({error.strerror or error})") from None
        for directory in (self.directory, self.points_dir):
            _remove_orphaned_temporaries(directory)
        _atomic_write_text(self.directory / "config.toml", dump_toml(study.resolved()))

    # ------------------------------------------------------------------------ point files

    def point_path(self, point):
        return self.points_dir / f"{point.point_id}.parquet"

    def problem(self, point):
        """Why the point's file cannot be used, or ``None`` if it is sound (or absent).

        The file must open as Parquet, its dmoe metadata must name this point (point id and the
        SHA-256 of the point's canonical key) and it must hold one row per scheme of the point,
        in the point's scheme order, each with the point's seed.

        Output
        ------
        reason : str or None
        """
        path = self.point_path(point)
        if not path.is_file():
            return None
        try:
            table = pq.read_table(path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            return f"does not open as Parquet ({type(error).__name__})"
        metadata = _file_metadata(table)
        if metadata is None:
            return "has no dmoe metadata"
        if metadata.get("point_id") != point.point_id:
            return f"holds the rows of point {metadata.get('point_id')!r}"
        stored_hash = metadata.get("config_sha256") or _sha256(metadata.get("key", ""))
        if stored_hash != _sha256(point.key):
            return "was written for another config (config hash differs)"
        schemes = list(point.config.schemes)
        if "scheme" not in table.column_names or table.column("scheme").to_pylist() != schemes:
            found = table.column("scheme").to_pylist() if "scheme" in table.column_names else []
            return (f"holds rows for schemes {found}, expected one row per scheme {schemes}")
        if "point_seed" in table.column_names and \
                set(table.column("point_seed").to_pylist()) != {point.seed}:
            return "holds rows with another point seed"
        return None

    def is_done(self, point):
        """True if the point's file exists and passes :meth:`problem`."""
        return self.point_path(point).is_file() and self.problem(point) is None

    def verify(self, points, log=None):
        """Move every unusable point file to ``points/corrupt/`` so that its point runs again.

        Parameters
        ----------
        points : list of Point
        log : callable or None
            Receives one line per file moved aside.

        Output
        ------
        moved : list of (Point, str, Path)
            The point, why its file failed, where the file went.
        """
        moved = []
        for point in points:
            reason = self.problem(point)
            if reason is None:
                continue
            self.corrupt_dir.mkdir(exist_ok=True)
            target = self.corrupt_dir / self.point_path(point).name
            number = 0
            while target.exists():
                number += 1
                target = self.corrupt_dir / f"{point.point_id}.{number}.parquet"
            os.replace(self.point_path(point), target)
            moved.append((point, reason, target))
            if log is not None:
                log(f"point file {str(self.point_path(point))!r} {reason}: moved to "
                    f"{str(target)!r}; the point runs again")
        return moved

    def write_point(self, point, rows, metadata):
        """Store the rows of one finished point atomically.

        Parameters
        ----------
        point : Point
        rows : list of dict
            One dict of scalar columns per scheme.
        metadata : dict
            Point metadata (seed, key, timings), kept in the Parquet file's schema metadata;
            ``point_id`` and ``config_sha256`` are added from ``point``.
        """
        table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
        metadata = {**metadata, "point_id": point.point_id,
                    "config_sha256": _sha256(point.key)}
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}),
             _METADATA_KEY: json.dumps(metadata, default=str).encode("utf-8")})
        _atomic_write_parquet(self.point_path(point), table,
                              fault=_driver_fault(point.point_id))

    def load_table(self, points=None):
        """The finished points' rows concatenated in grid order (a pandas DataFrame).

        Parameters
        ----------
        points : list of Point or None
            Restrict to these points, skipping files that fail :meth:`problem` (default: every
            point listed in the manifest whose file opens and names that point).
        """
        frames = []
        if points is None:
            for pid in self.finished_ids():
                frames.append(pq.read_table(self.points_dir / f"{pid}.parquet").to_pandas())
        else:
            for point in points:
                if self.is_done(point):
                    frames.append(pq.read_table(self.point_path(point)).to_pandas())
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def finished_ids(self):
        """Point ids of the manifest whose files open and name their point, in grid order."""
        ids = [p["point_id"] for p in self.read_manifest().get("points", [])]
        finished = []
        for pid in ids:
            path = self.points_dir / f"{pid}.parquet"
            if not path.is_file():
                continue
            try:
                metadata = _file_metadata(pq.read_table(path))
            except Exception:  # a damaged file is not a finished point
                continue
            if metadata is not None and metadata.get("point_id") == pid:
                finished.append(pid)
        return finished

    def finalize(self, points, metadata):
        """Write ``results.parquet`` (all points, grid order) with run metadata attached.

        Raises
        ------
        RuntimeError
            The table would not hold exactly one row per (point, scheme); nothing is written.
        """
        frame = self.load_table(points)
        expected = sum(len(p.config.schemes) for p in points)
        missing = [p.point_id for p in points if not self.is_done(p)]
        if missing or len(frame) != expected or (
                len(frame) and frame.duplicated(["point_seed", "scheme"]).any()):
            raise RuntimeError(
                f"{str(self.results_path)!r} not written: the point files hold {len(frame)} "
                f"row(s), expected {expected} (one per point and scheme)"
                + (f"; missing or unusable points: {', '.join(missing)}" if missing else ""))
        table = pa.Table.from_pandas(frame, preserve_index=False)
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
    manifest = store.read_manifest()
    if store.results_path.is_file():
        try:
            table = pq.read_table(store.results_path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise ValueError(f"{str(store.results_path)!r} does not open as Parquet "
                             f"({type(error).__name__}); delete it and rerun `dmoe run` into "
                             f"{str(directory)!r} to write it again") from None
        metadata = _file_metadata(table)
        if metadata is None:
            metadata = manifest.get("metadata", {})
        table = table.to_pandas()
    else:
        table, metadata = store.load_table(), manifest.get("metadata", {})
    if as_ == "xarray":
        from .export import results_to_xarray
        return results_to_xarray(table, metadata, manifest)
    return table, metadata


# ---------------------------------------------------------------------------- files


def _sha256(text):
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()


def _file_metadata(table):
    raw = (table.schema.metadata or {}).get(_METADATA_KEY)
    if not raw:
        return None
    try:
        metadata = json.loads(raw)
    except ValueError:
        return None
    return metadata if isinstance(metadata, dict) else None


def _read_holder(descriptor):
    try:
        text = os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return f"process {text}" if text.startswith("pid ") else "another process"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove_orphaned_temporaries(directory):
    """Remove ``directory``'s temporary files whose writer (pid in the name) is gone.

    Files of a live writer, and temporary files not named by this module (owner unknown), are
    left alone: they are never read as results.
    """
    for path in directory.glob(".*.tmp"):
        match = _TEMPORARY.match(path.name)
        if match is None or _alive(int(match.group(1))):
            continue
        path.unlink(missing_ok=True)


def _file_mode():
    """``0o666 & ~umask``: what ``open`` gives a new file (``mkstemp`` gives 0o600)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # no /proc: read it by setting it (restored at once)
    os.umask(umask)
    return 0o666 & ~umask


def _temporary(path):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}.",
                               suffix=".tmp")
    os.fchmod(fd, _file_mode())
    return fd, tmp


def _atomic_write_text(path, text):
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_parquet(path, table, fault=None):
    path = Path(path)
    fd, tmp = _temporary(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if fault == "writing":
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fault == "written":
        os.kill(os.getpid(), signal.SIGKILL)


def _driver_fault(point_id):
    """Fault injection (tests only): ``DMOE_FAULT_KILL_DRIVER=<point id>:writing|written``
    SIGKILLs this process while that point's file is being written (the temporary file is
    complete, not yet moved into place) or just after it is in place."""
    spec = os.environ.get("DMOE_FAULT_KILL_DRIVER", "")
    target, _, stage = spec.partition(":")
    if target != point_id:
        return None
    return stage if stage in ("writing", "written") else "written"

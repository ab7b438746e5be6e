"""Running a study: points through an executor into the result store, with a progress bar.

The sweep is a list of independent points; :func:`dmoe.cosim.run_point` runs one from its
config alone. An *executor* maps it over the points not yet done and yields each point's rows as
soon as they exist, so the store writes them one by one. Only :class:`SerialExecutor` exists
today; a process pool or a Ray executor (issue 7) implements the same one method and gives
identical results, because every random stream of a point derives from its config.
"""

import functools
import time
from dataclasses import dataclass

from .engine import run_point
from .execution import enable_memory_growth, run_metadata
from .models import check_model, check_point, load_model
from .store import ResultStore

__all__ = ["Executor", "SerialExecutor", "RunSummary", "run_study", "preflight"]


class Executor:
    """Interface of a sweep executor.

    Subclasses implement :meth:`map`, which calls ``function(item)`` for every item and yields
    ``(item, result)`` pairs in any order, as they complete. An exception in ``function`` is
    raised from the iterator; pairs yielded before it are kept by the caller.
    """

    name = "abstract"

    def map(self, function, items):  # pragma: no cover - interface
        raise NotImplementedError


class SerialExecutor(Executor):
    """Run points one after another in this process."""

    name = "serial"

    def map(self, function, items):
        for item in items:
            yield item, function(item)


@dataclass(frozen=True)
class RunSummary:
    """What :func:`run_study` did.

    Attributes
    ----------
    directory : str
    points_total, points_run, points_skipped : int
    wall_time_s : float
    results_path : str
    """

    directory: str
    points_total: int
    points_run: int
    points_skipped: int
    wall_time_s: float
    results_path: str


def _run_config(point, model=None):
    # Module-level so a process or Ray executor can pickle it.
    return run_point(point.config, model=model)


def preflight(study, model=None):
    """Check every point against its MoE before anything is written.

    Loads (training on first use) each distinct MoE of the study, or takes ``model``, and
    checks D, k, layer-wise rho and distances against its K and L, and the channel settings
    with ``dmoe.phy``.

    Raises
    ------
    ValueError
        Naming the offending key.
    """
    for point in study.points:
        try:
            check_point(point.config, model or load_model(point.config.moe))
        except ValueError as error:
            swept = ", ".join(f"{k}={v!r}" for k, v in point.swept.items())
            raise ValueError(f"{error}" + (f" [at sweep point {swept}]" if swept else "")) \
                from None


def run_study(study, directory, executor=None, progress=True, model=None):
    r"""Run every point of a study not yet in ``directory`` and write the results table.

    Parameters
    ----------
    study : Study
        From :func:`dmoe.cosim.load_study`.
    directory : str or path
        Run directory (created; an existing one must hold the same study: its finished points
        are skipped).
    executor : Executor or None
        Default :class:`SerialExecutor`.
    progress : bool
        Show a tqdm bar (points done, ETA) on stderr.
    model : MoEProtocol or None
        Run every point on this MoE instead of the one its ``[moe]`` names (see
        :func:`~dmoe.cosim.run_point`); a process or Ray executor must be able to pickle it.

    Output
    ------
    summary : RunSummary

    Example
    -------
    >>> summary = run_study(load_study("configs/tradeoff.toml"), "results/tradeoff")  # doctest: +SKIP
    """
    executor = executor or SerialExecutor()
    if model is not None:
        check_model(model)
    started = time.perf_counter()
    enable_memory_growth()  # before the preflight's model loads initialise the GPUs
    preflight(study, model)
    store = ResultStore(directory)
    metadata = run_metadata()
    metadata.update(executor=executor.name, seed=study.points[0].config.seed,
                    execution_mode=sorted({p.config.execution.mode for p in study.points}),
                    config=study.resolved(), source=study.source)
    store.prepare(study, metadata)
    todo = [point for point in study.points if not store.is_done(point)]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(study.points), initial=len(study.points) - len(todo),
                   unit="point", desc="dmoe run", dynamic_ncols=True)
    try:
        function = _run_config if model is None else functools.partial(_run_config,
                                                                       model=model)
        for point, rows in executor.map(function, todo):
            store.write_point(point, rows, {
                "point_id": point.point_id, "index": point.index, "seed": point.seed,
                "key": point.key, "swept": point.swept, "executor": executor.name,
                "versions": metadata["versions"], "device": rows[0].get("device")})
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    results = store.finalize(study.points, metadata)
    return RunSummary(directory=str(directory), points_total=len(study.points),
                      points_run=len(todo), points_skipped=len(study.points) - len(todo),
                      wall_time_s=time.perf_counter() - started, results_path=str(results))

"""Executors that spread sweep points over processes (one machine) or a Ray cluster.

Both implement :class:`dmoe.cosim.runner.Executor`: ``map(function, items)`` yields
``(item, result)`` pairs *as they complete*, so :func:`dmoe.cosim.run_study` writes every
finished point to the resumable store at once and an interruption loses only the points still
running. Every random stream of a point derives from its config (``docs/cosim.md``), so the
rows do not depend on which executor, process or machine ran the point: the results of
``serial``, ``process`` and ``ray`` are identical (``tests/test_scale_executors.py``).

A worker that dies in the middle of a point (killed, out of memory, a segfault) loses nothing:

* :class:`ProcessExecutor` sees ``BrokenProcessPool``, starts a fresh pool and resubmits every
  point that had not finished, up to ``max_retries`` times per point, and says so in one line;
* :class:`RayExecutor` lets Ray retry the task (``max_retries``).

A point that still fails, or whose function raised an exception, is *reported*: the other
points run to the end and are written, then :class:`PointsFailed` is raised, naming each failed
point and why. Rerunning the study into the same directory runs exactly the missing points.

The workers of :class:`ProcessExecutor` die with their driver, however the driver dies (SIGKILL
included): on Linux each worker asks the kernel for a parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``) first thing, and checks that its parent has not died
already; elsewhere a daemon thread in each worker polls its parent's pid once a second and
exits when the parent is gone. The pool's ``multiprocessing`` resource tracker exits by itself
once the driver and every worker have closed their end of its pipe.

TensorFlow is never sent to a worker: each worker process imports it itself when the point
function first needs it, after the worker has set ``CUDA_VISIBLE_DEVICES`` (its GPU, if any)
and ``TF_FORCE_GPU_ALLOW_GROWTH=true`` (GPU memory growth on), which TensorFlow reads when it
initialises. ``ray`` is imported only inside :meth:`RayExecutor.map`.

Fault injection (tests only): with the environment variable ``DMOE_FAULT_KILL_POINT`` set to a
point id (or, for items that are not points, ``str(item)``) in the *driver*, the worker that
starts that point calls ``os._exit(71)`` before running it. With ``DMOE_FAULT_ONCE_DIR`` also
set to a directory, only the first attempt dies (a marker file in that directory records it),
so a retry succeeds; without it every attempt dies.
"""

import itertools
import multiprocessing
import multiprocessing.context
import os
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from .runner import Executor

__all__ = ["ProcessExecutor", "RayExecutor", "PointsFailed", "PointFailure", "make_executor",
           "EXECUTORS"]

#: Names accepted by :func:`make_executor` (and ``dmoe run --executor``).
EXECUTORS = ("serial", "process", "ray")

_DIED = "its worker process died (killed, out of memory or crashed)"
_EVERY_WORKER_DIED = ("; no point finished: if the workers failed at start, see their error "
                      "output (a script must call run_study under `if __name__ == "
                      "\"__main__\":`, workers are spawned)")

#: Exit status of a worker killed by the fault-injection hook.
FAULT_EXIT_CODE = 71


@dataclass(frozen=True)
class PointFailure:
    """One point an executor could not complete.

    Attributes
    ----------
    item : object
        The item (a :class:`dmoe.cosim.Point` in a study) that failed.
    attempts : int
        How many times it was started.
    reason : str
        Why: the worker died (with its exit status when known) or the exception's text.
    """

    item: object
    attempts: int
    reason: str

    @property
    def label(self):
        point_id = getattr(self.item, "point_id", None)
        if point_id is None:
            return repr(self.item)
        swept = getattr(self.item, "swept", None) or {}
        where = ", ".join(f"{k}={v!r}" for k, v in swept.items())
        return f"point {point_id}" + (f" ({where})" if where else "")


class PointsFailed(RuntimeError):
    """Raised by an executor's ``map`` after every other point has completed.

    Attributes
    ----------
    failures : list of PointFailure
    """

    def __init__(self, failures):
        self.failures = list(failures)
        lines = [f"{len(self.failures)} point(s) failed (the others are stored; rerun the same "
                 "command to run the missing points):"]
        lines += [f"  {f.label}: {f.reason} (after {f.attempts} attempt(s))"
                  for f in self.failures]
        super().__init__("\n".join(lines))


# ---------------------------------------------------------------------------------- worker side

def _fault_spec():
    """The fault-injection setting of this (driver) process, or None."""
    target = os.environ.get("DMOE_FAULT_KILL_POINT")
    if not target:
        return None
    return {"target": target, "once_dir": os.environ.get("DMOE_FAULT_ONCE_DIR") or None}


def _item_label(item):
    point_id = getattr(item, "point_id", None)
    return str(point_id) if point_id is not None else str(item)


def _inject_fault(item, fault):
    if fault is None or _item_label(item) != fault["target"]:
        return
    if fault["once_dir"] is not None:
        marker = Path(fault["once_dir"]) / f"killed-{_item_label(item)}"
        try:
            descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # an earlier attempt already died here: this one runs
        os.close(descriptor)
    os._exit(FAULT_EXIT_CODE)


def _prepare_worker_environment(gpu=None, threads=None):
    """Process-level settings a worker needs *before* TensorFlow is imported in it."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads is not None:
        # TensorFlow reads these when it creates its thread pools, at its first op.
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent_pid):
    """Make this worker exit when ``parent_pid`` (the driver) exits, however it exits.

    Linux: the kernel sends SIGKILL to this process when its parent dies
    (``PR_SET_PDEATHSIG``); if the parent died before that was set, exit now. Elsewhere: a
    daemon thread polls the parent pid once a second.

    The Linux signal also comes when the parent *thread* that started the worker exits; pools
    start their workers from the thread that iterates :meth:`ProcessExecutor.map`, and a pool
    does not outlive that iteration.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:
                    os._exit(1)
                return "prctl"
        except (OSError, AttributeError):
            pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, name="dmoe-parent-watchdog", daemon=True).start()
    return "watchdog"


def _process_initializer(gpu_queue, threads, parent_pid=None):
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    gpu = gpu_queue.get() if gpu_queue is not None else None
    _prepare_worker_environment(gpu, threads)


class _TrackingSpawnContext(multiprocessing.context.SpawnContext):
    """The ``spawn`` context, remembering every process it makes (a pool's workers), so that
    an interrupted pool can stop them and a broken one can say how they ended."""

    def __init__(self):
        super().__init__()
        self.made = []

    def Process(self, *args, **kwargs):  # noqa: N802 - the name multiprocessing looks up
        process = multiprocessing.context.SpawnProcess(*args, **kwargs)
        self.made.append(process)
        return process

    @property
    def started(self):
        return [process for process in self.made if process.pid is not None]


def _call_point(function, item, fault, started=None):
    """What a worker runs for one item: the fault hook, then ``function(item)``.

    ``started`` is a file the worker creates first (synchronously, so it exists even if the
    worker dies a moment later): the driver charges an attempt only to points that started.
    """
    if started is not None:
        os.close(os.open(started, os.O_CREAT | os.O_WRONLY))
    _inject_fault(item, fault)
    return function(item)


def _stop_processes(processes, grace_s=3.0):
    """SIGTERM, then SIGKILL what is still alive after ``grace_s`` (a worker started while
    its parent had SIGTERM blocked inherits the blocked signal and would outlive SIGTERM)."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=grace_s)
        if process.is_alive():
            process.kill()
            process.join(timeout=grace_s)


def _ray_call_point(function, item, fault, threads):
    _prepare_worker_environment(None, threads)  # Ray already set CUDA_VISIBLE_DEVICES
    return _call_point(function, item, fault)


# ---------------------------------------------------------------------------------- executors

class ProcessExecutor(Executor):
    r"""Run points in a pool of worker processes on this machine (``spawn`` start method).

    Parameters
    ----------
    workers : int or None
        Number of worker processes (default: ``len(gpus)`` if ``gpus`` is given, else the
        number of CPU cores).
    gpus : list of int or str, or None
        One GPU per worker: worker i sees only ``gpus[i]`` (``CUDA_VISIBLE_DEVICES``). ``None``
        leaves the devices as they are (every worker sees every GPU).
    threads_per_worker : int or None
        TensorFlow intra-op threads per worker (default: TensorFlow's choice, all cores; set
        it to ``cores // workers`` when several CPU workers share a machine).
    max_retries : int
        How often a point whose worker died is resubmitted (to a fresh pool) before it is
        reported as failed. Exceptions raised by the point function are not retried.
    log : callable or None
        Receives one line each time a worker died and a fresh pool retries points (default:
        printed to stderr).

    Example
    -------
    >>> run_study(load_study("configs/tradeoff.toml"), "results/tradeoff",
    ...           executor=ProcessExecutor(workers=4))                    # doctest: +SKIP
    """

    name = "process"

    def __init__(self, workers=None, gpus=None, threads_per_worker=None, max_retries=1,
                 log=None):
        if gpus is not None:
            gpus = [str(g) for g in gpus]
            if not gpus:
                raise ValueError("gpus must name at least one GPU, or be None")
            if workers is not None and workers != len(gpus):
                raise ValueError(f"workers ({workers}) must equal len(gpus) ({len(gpus)}): "
                                 "one worker per GPU")
            workers = len(gpus)
        if workers is None:
            workers = os.cpu_count() or 1
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if threads_per_worker is not None and (not isinstance(threads_per_worker, int)
                                               or threads_per_worker < 1):
            raise ValueError(f"threads_per_worker must be an integer >= 1 or None, got "
                             f"{threads_per_worker!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.workers = workers
        self.gpus = gpus
        self.threads_per_worker = threads_per_worker
        self.max_retries = max_retries
        self.log = log

    def _log(self, line):
        if self.log is not None:
            self.log(line)
        else:
            print(f"dmoe: {line}", file=sys.stderr, flush=True)

    def _pool(self, num_items):
        from concurrent.futures import ProcessPoolExecutor
        context = _TrackingSpawnContext()
        workers = min(self.workers, num_items)
        gpu_queue = None
        if self.gpus is not None:
            gpu_queue = context.Queue()
            for gpu in self.gpus[:workers]:
                gpu_queue.put(gpu)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                   initializer=_process_initializer,
                                   initargs=(gpu_queue, self.threads_per_worker, os.getpid()))
        return pool, context

    def map(self, function, items):
        import shutil
        import tempfile
        items = list(items)
        fault = _fault_spec()
        attempts = [0] * len(items)
        waiting = list(range(len(items)))
        failures = []
        completed = 0
        markers = Path(tempfile.mkdtemp(prefix="dmoe-started-"))
        try:
            for pool_number in itertools.count():
                if not waiting:
                    break
                started = markers / str(pool_number)
                started.mkdir()
                result = yield from self._run_pool(function, items, waiting, attempts, fault,
                                                   started, failures)
                waiting, finished, exits = result
                completed += finished
                if waiting:
                    statuses = ", ".join(sorted({str(code) for code in exits})) or "unknown"
                    self._log(f"a worker process died (worker exit status {statuses}); a new "
                              f"pool retries {len(waiting)} unfinished point(s)")
        finally:
            shutil.rmtree(markers, ignore_errors=True)
        if failures and not completed and all(f.reason == _DIED for f in failures):
            failures = [PointFailure(f.item, f.attempts, _DIED + _EVERY_WORKER_DIED)
                        for f in failures]
        if failures:
            raise PointsFailed(failures)

    def _run_pool(self, function, items, waiting, attempts, fault, started, failures):
        """One pool over ``waiting``: yields finished points; returns (to rerun, finished,
        exit statuses of the workers that died).

        When the pool breaks (a worker died), every point not finished gets a
        ``BrokenProcessPool``. Only the points that had started in it (their marker file
        exists) are charged an attempt; points still queued are resubmitted for free, unless
        none had started at all (the workers die at start-up: everything is charged, so that
        the loop ends).
        """
        pool, context = self._pool(len(waiting))
        clean_exit = False
        broken, again, finished = [], [], 0
        try:
            futures = {}
            for position, index in enumerate(waiting):
                try:
                    future = pool.submit(_call_point, function, items[index], fault,
                                         str(started / str(index)))
                except BrokenProcessPool:
                    # A worker died while points were still being submitted: the rest were
                    # never handed out, so they go to the next pool uncharged.
                    again.extend(waiting[position:])
                    break
                attempts[index] += 1
                futures[future] = index
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = futures[future]
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken.append(index)
                        continue
                    except Exception as error:  # the point function raised: not retried
                        failures.append(PointFailure(items[index], attempts[index],
                                                     _describe(error)))
                        continue
                    finished += 1
                    yield items[index], result
            clean_exit = True
        finally:
            if not clean_exit:
                # Interrupted (Ctrl-C, or the caller stopped iterating): stop the points
                # still running instead of waiting for them; they are not stored.
                _stop_processes(context.started)
            pool.shutdown(wait=clean_exit, cancel_futures=True)
        # How the workers of a broken pool ended (a negative status is the signal that ended it).
        exits = [process.exitcode for process in context.started
                 if process.exitcode not in (None, 0)] if broken or again else []
        ran = {index for index in broken if (started / str(index)).exists()}
        for index in broken:
            if ran and index not in ran:
                attempts[index] -= 1  # never started: this pool's break is not its fault
                again.append(index)
            elif attempts[index] <= self.max_retries:
                again.append(index)
            else:
                failures.append(PointFailure(items[index], attempts[index], _DIED))
        return sorted(again), finished, exits


class RayExecutor(Executor):
    r"""Run every point as one Ray task, on a local Ray instance or a cluster.

    Parameters
    ----------
    address : str or None
        Ray cluster to connect to (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``).
        ``None``: the Ray instance already initialised in this process, else ``RAY_ADDRESS``,
        else a new local instance on this machine (shut down after :meth:`map`).
    num_gpus : float
        GPUs reserved per task (Ray sets ``CUDA_VISIBLE_DEVICES`` of the worker accordingly;
        ``1`` runs one point per GPU at a time, ``0.5`` two).
    num_cpus : float
        CPUs reserved per task.
    threads_per_worker : int or None
        TensorFlow intra-op threads in each worker (default: TensorFlow's choice).
    max_retries : int
        Ray retries of a task whose worker died. Exceptions raised by the point function are
        not retried (they would fail again).
    init_kwargs : dict or None
        More keyword arguments of ``ray.init`` when this executor starts or joins Ray
        (e.g. ``{"runtime_env": {...}}``).

    Example
    -------
    >>> run_study(study, "results/big", executor=RayExecutor(address="auto", num_gpus=1))
    ... # doctest: +SKIP
    """

    name = "ray"

    def __init__(self, address=None, num_gpus=0, num_cpus=1, threads_per_worker=None,
                 max_retries=3, init_kwargs=None):
        for label, value in (("num_gpus", num_gpus), ("num_cpus", num_cpus)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{label} must be a number >= 0, got {value!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.address = address
        self.num_gpus = num_gpus
        self.num_cpus = num_cpus
        self.threads_per_worker = threads_per_worker
        self.max_retries = max_retries
        self.init_kwargs = dict(init_kwargs or {})

    def map(self, function, items):
        try:
            import ray
        except ImportError:
            raise ImportError("the ray executor needs Ray: pip install 'dmoe[distributed]'") \
                from None
        items = list(items)
        started_here = False
        if not ray.is_initialized():
            options = dict(self.init_kwargs)
            if self.address is None and not os.environ.get("RAY_ADDRESS"):
                options = {"include_dashboard": False, "log_to_driver": False, **options}
            ray.init(address=self.address, **options)
            started_here = True  # disconnect afterwards (a cluster keeps running)
        task = ray.remote(_ray_call_point).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries,
            retry_exceptions=False)
        fault = _fault_spec()
        function_ref = ray.put(function)
        pending = {task.remote(function_ref, item, fault, self.threads_per_worker): index
                   for index, item in enumerate(items)}
        failures = []
        clean_exit = False
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as error:  # the function raised
                        failures.append(PointFailure(items[index], 1,
                                                     _describe(error.as_instanceof_cause())))
                        continue
                    except ray.exceptions.RayError as error:      # worker/node died
                        failures.append(PointFailure(
                            items[index], self.max_retries + 1,
                            f"its Ray worker died ({type(error).__name__})"))
                        continue
                    yield items[index], result
            clean_exit = True
        finally:
            if not clean_exit:
                for ref in pending:
                    ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()
        if failures:
            raise PointsFailed(failures)


def _describe(error):
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def make_executor(name="serial", workers=None, address=None, num_gpus=0, gpus=None,
                  max_retries=None):
    """An executor by name, as ``dmoe run --executor NAME`` builds it.

    Parameters
    ----------
    name : {"serial", "process", "ray"}
    workers : int or None
        ``process``: worker processes (default: CPU cores, or one per GPU).
    address : str or None
        ``ray``: cluster address (default: ``RAY_ADDRESS``, else a local instance).
    num_gpus : float
        ``ray``: GPUs per task. ``process``: an integer, the number of GPUs of this machine
        to use, one worker per GPU (GPUs ``0 .. num_gpus - 1``).
    gpus : list or None
        ``process``: the GPUs to use, one worker each (instead of ``num_gpus``).
    max_retries : int or None
        Retries of a point whose worker died (default: 1 for ``process``, 3 for ``ray``).

    Output
    ------
    executor : Executor

    Raises
    ------
    ValueError
        An unknown name, or a setting that does not apply to this executor.
    """
    from .runner import SerialExecutor
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
    given = {"workers": workers is not None, "address": address is not None,
             "num_gpus": bool(num_gpus), "gpus": gpus is not None,
             "max_retries": max_retries is not None}
    applies = {"serial": set(), "process": {"workers", "num_gpus", "gpus", "max_retries"},
               "ray": {"address", "num_gpus", "max_retries"}}[name]
    extra = [key for key, is_given in given.items() if is_given and key not in applies]
    if extra:
        raise ValueError(f"{', '.join(extra)} do(es) not apply to the {name!r} executor")
    if name == "serial":
        return SerialExecutor()
    if name == "ray":
        import importlib.util
        if importlib.util.find_spec("ray") is None:
            raise ValueError("--executor ray needs Ray, which is not installed: "
                             "pip install 'dmoe[distributed]'")
    if name == "process":
        if num_gpus and gpus is None:
            if float(num_gpus) != int(num_gpus) or num_gpus < 0:
                raise ValueError(f"num_gpus of the 'process' executor must be a whole number "
                                 f"of GPUs (one worker each), got {num_gpus!r}")
            gpus = list(range(int(num_gpus)))
        return ProcessExecutor(workers=workers, gpus=gpus,
                               max_retries=1 if max_retries is None else max_retries)
    return RayExecutor(address=address, num_gpus=num_gpus,
                       max_retries=3 if max_retries is None else max_retries)

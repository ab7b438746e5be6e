"""Process and Ray executors: same results as serial, and a dying worker loses nothing.

The study is tiny (2 points x 2 schemes, 16 tokens, 8 subcarriers) because most of the time is
spent starting workers that import TensorFlow. Worker deaths are injected with the executors'
test hook (``DMOE_FAULT_KILL_POINT`` / ``DMOE_FAULT_ONCE_DIR``: ``os._exit`` in the worker).
"""

import contextlib
import json
import math
import multiprocessing
import os
import signal
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dmoe.cosim import NONDETERMINISTIC_COLUMNS
from dmoe.cosim.executors import (PointFailure, PointsFailed, ProcessExecutor, RayExecutor,
                                  make_executor)
from dmoe.cosim.runner import SerialExecutor, run_study
from dmoe.cosim.store import ResultStore, read_results
from dmoe.cosim.study import load_study

TINY = {"num_tokens": 16, "schemes": ["des", "top_k"], "importance": [0.6, 1.0],
        "channel": {"num_subcarriers": 8}}
ITEMS = [0, -1, 2, -3, 4, -5]


def _table(directory):
    table, _ = read_results(directory)
    return table.drop(columns=list(NONDETERMINISTIC_COLUMNS))


def _point_executor(store, point):
    raw = pq.read_schema(store.point_path(point)).metadata[b"dmoe"]
    return json.loads(raw)["executor"]


@contextlib.contextmanager
def _time_limit(seconds):
    """Bound a block in wall time (SIGALRM): a hung cluster fails the test, not the suite."""
    def expire(signum, frame):
        raise TimeoutError(f"executor test exceeded {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _collect_until_failed(executor, function, items, seconds=120):
    """Every ``(item, result)`` the executor yields, and the PointsFailed it must end with."""
    got = {}
    with _time_limit(seconds), pytest.raises(PointsFailed) as info:
        for item, result in executor.map(function, items):
            got[item] = result
    return got, info.value


@pytest.fixture(scope="module")
def serial_table(tmp_path_factory):
    directory = tmp_path_factory.mktemp("serial") / "run"
    run_study(load_study(TINY), directory, executor=SerialExecutor(), progress=False)
    return _table(directory)


# ------------------------------------------------------------------------------ process pool

def test_process_executor_equals_serial_when_a_worker_dies_mid_point(
        tmp_path, monkeypatch, serial_table):
    # The worker dies holding the first point (before it imports TensorFlow: that keeps the
    # test short); the pool breaks, and both points run in a fresh pool.
    study = load_study(TINY)
    victim = study.points[0]
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("DMOE_FAULT_KILL_POINT", victim.point_id)
    monkeypatch.setenv("DMOE_FAULT_ONCE_DIR", str(markers))
    with _time_limit(240):
        summary = run_study(study, tmp_path / "run", executor=ProcessExecutor(workers=1),
                            progress=False)
    assert (markers / f"killed-{victim.point_id}").is_file()   # its first worker did die
    assert (summary.points_run, summary.points_total) == (2, 2)
    pd.testing.assert_frame_equal(_table(tmp_path / "run"), serial_table)
    store = ResultStore(tmp_path / "run")
    assert [_point_executor(store, p) for p in study.points] == ["process", "process"]


def test_process_executor_reports_points_it_cannot_finish_and_keeps_the_rest(monkeypatch):
    # The worker dies on item 3 at every attempt: after max_retries it is reported, every
    # other item is yielded with its right result (or, if it shared the broken pool each
    # time, reported too), and running the reported items again completes them. A builtin
    # (abs) as the point function keeps the workers light.
    monkeypatch.setenv("DMOE_FAULT_KILL_POINT", "-3")
    monkeypatch.delenv("DMOE_FAULT_ONCE_DIR", raising=False)
    got, error = _collect_until_failed(ProcessExecutor(workers=2, max_retries=1), abs, ITEMS)
    failed = {failure.item: failure for failure in error.failures}
    assert -3 in failed and failed[-3].attempts == 2 and "died" in failed[-3].reason
    assert set(got) | set(failed) == set(ITEMS) and not set(got) & set(failed)
    assert all(result == abs(item) for item, result in got.items())
    assert "point(s) failed" in str(error) and "rerun" in str(error)

    # When no point finishes at all, the report points at a failing worker start.
    with _time_limit(60), pytest.raises(PointsFailed, match="no point finished"):
        list(ProcessExecutor(workers=1, max_retries=0).map(abs, [-3]))

    monkeypatch.delenv("DMOE_FAULT_KILL_POINT")
    with _time_limit(120):
        again = dict(ProcessExecutor(workers=2).map(abs, sorted(failed)))
    assert again == {item: abs(item) for item in failed}


def test_process_executor_charges_only_the_point_whose_worker_died(monkeypatch):
    # One worker runs the items in order and dies on -3 at every attempt; the items queued
    # behind it never started, so the broken pools are not charged to them: with
    # max_retries=1 only -3 is reported (after exactly 2 attempts), every other item finishes.
    monkeypatch.setenv("DMOE_FAULT_KILL_POINT", "-3")
    monkeypatch.delenv("DMOE_FAULT_ONCE_DIR", raising=False)
    got, error = _collect_until_failed(ProcessExecutor(workers=1, max_retries=1), abs, ITEMS)
    assert [(f.item, f.attempts) for f in error.failures] == [(-3, 2)]
    assert got == {item: abs(item) for item in ITEMS if item != -3}


def test_process_executor_reports_exceptions_without_retrying():
    got, error = _collect_until_failed(ProcessExecutor(workers=1), math.sqrt,
                                       [0.0, 1.0, -4.0, 9.0])
    assert got == {0.0: 0.0, 1.0: 1.0, 9.0: 3.0}
    (failure,) = error.failures
    assert isinstance(failure, PointFailure)
    assert (failure.item, failure.attempts) == (-4.0, 1)
    assert "ValueError" in failure.reason and "math domain error" in failure.reason


def test_process_executor_stops_running_points_when_the_caller_stops():
    # The caller takes the first result and stops (as run_study does on Ctrl-C or a failed
    # write): the 60 s point still running is terminated, not waited for.
    before = set(multiprocessing.active_children())
    with _time_limit(40):
        results = ProcessExecutor(workers=2).map(time.sleep, [0, 60])
        assert next(results) == (0, None)
        results.close()
        workers = set(multiprocessing.active_children()) - before
        for worker in workers:
            worker.join(timeout=15)
    assert not [worker for worker in workers if worker.is_alive()]


def test_each_process_worker_sees_its_gpu_memory_growth_and_thread_settings(monkeypatch):
    names = ["CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "TF_NUM_INTRAOP_THREADS"]
    for name in names:  # setenv first so that teardown restores each variable as it was
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    executor = ProcessExecutor(gpus=["5"], threads_per_worker=3)
    with _time_limit(60):
        seen = dict(executor.map(os.getenv, names))
    assert seen == {"CUDA_VISIBLE_DEVICES": "5", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
                    "TF_NUM_INTRAOP_THREADS": "3"}
    # Several GPUs: the initializer hands worker i the i-th GPU of the queue.
    from dmoe.cosim.executors import _process_initializer
    queue = multiprocessing.get_context("spawn").Queue()
    for gpu in ("2", "3"):
        queue.put(gpu)
    handed = []
    for _ in range(2):
        _process_initializer(queue, None)
        handed.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert handed == ["2", "3"]


@pytest.mark.parametrize("kwargs, word", [
    ({"workers": 0}, "workers"), ({"workers": 3, "gpus": [0, 1]}, "one worker per GPU"),
    ({"gpus": []}, "gpus"), ({"max_retries": -1}, "max_retries"),
    ({"threads_per_worker": 0}, "threads_per_worker")])
def test_process_executor_rejects_bad_settings(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ProcessExecutor(**kwargs)


def test_make_executor_names_and_settings():
    assert make_executor("serial").name == "serial"
    assert make_executor("process", workers=3).workers == 3
    per_gpu = make_executor("process", num_gpus=2)
    assert (per_gpu.workers, per_gpu.gpus) == (2, ["0", "1"])
    ray_executor = make_executor("ray", address="auto", num_gpus=0.5)
    assert (ray_executor.address, ray_executor.num_gpus, ray_executor.max_retries) == \
        ("auto", 0.5, 3)
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("dask")
    with pytest.raises(ValueError, match="workers do.* not apply to the 'ray' executor"):
        make_executor("ray", workers=2)
    with pytest.raises(ValueError, match="address do.* not apply to the 'process' executor"):
        make_executor("process", address="auto")
    with pytest.raises(ValueError, match="whole number"):
        make_executor("process", num_gpus=0.5)
    with pytest.raises(ValueError, match="num_gpus"):
        RayExecutor(num_gpus=-1)


# ------------------------------------------------------------------------------------ Ray

@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the distributed extra (ray) is not installed")
    with _time_limit(120):
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_executor_equals_serial_when_a_worker_dies_mid_point(
        tmp_path, monkeypatch, serial_table, local_ray):
    study = load_study(TINY)
    victim = study.points[0]
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("DMOE_FAULT_KILL_POINT", victim.point_id)
    monkeypatch.setenv("DMOE_FAULT_ONCE_DIR", str(markers))
    with _time_limit(300):
        summary = run_study(study, tmp_path / "run", executor=RayExecutor(max_retries=2),
                            progress=False)
    assert (markers / f"killed-{victim.point_id}").is_file()   # Ray retried the dead task
    assert summary.points_run == 2
    pd.testing.assert_frame_equal(_table(tmp_path / "run"), serial_table)
    store = ResultStore(tmp_path / "run")
    assert [_point_executor(store, p) for p in study.points] == ["ray", "ray"]
    assert local_ray.is_initialized()  # an instance the executor did not start stays up


def test_ray_executor_reports_a_dead_point_and_a_rerun_completes_it(
        tmp_path, monkeypatch, serial_table, local_ray):
    study = load_study(TINY)
    victim = study.points[1]
    monkeypatch.setenv("DMOE_FAULT_KILL_POINT", victim.point_id)
    monkeypatch.delenv("DMOE_FAULT_ONCE_DIR", raising=False)
    directory = tmp_path / "run"
    with _time_limit(300), pytest.raises(PointsFailed) as info:
        run_study(study, directory, executor=RayExecutor(max_retries=0), progress=False)
    (failure,) = info.value.failures
    assert failure.item.point_id == victim.point_id and "died" in failure.reason
    store = ResultStore(directory)
    assert [store.is_done(p) for p in study.points] == [True, False]
    assert not store.results_path.exists()

    monkeypatch.delenv("DMOE_FAULT_KILL_POINT")
    with _time_limit(300):
        again = run_study(study, directory, executor=RayExecutor(), progress=False)
    assert (again.points_run, again.points_skipped) == (1, 1)
    pd.testing.assert_frame_equal(_table(directory), serial_table)

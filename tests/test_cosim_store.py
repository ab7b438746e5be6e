"""The result store never serves a wrong point: verification on resume, one writer, the umask.

The study is tiny and PHY-free (``phy.fidelity = "ideal"``, 16 tokens): what is tested is the
store, and a point then takes milliseconds.
"""

import json
import os
import shutil
import subprocess
import sys
import threading

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dmoe.cosim.cli import main
from dmoe.cosim.metrics import NONDETERMINISTIC_COLUMNS
from dmoe.cosim.runner import run_study
from dmoe.cosim.store import ResultStore, RunDirectoryBusy, read_results
from dmoe.cosim.study import load_study

IDEAL = {"num_tokens": 16, "schemes": ["des", "top_k"], "phy": {"fidelity": "ideal"},
         "channel": {"num_subcarriers": 8}}


def _study(values):
    return load_study({**IDEAL, "importance": list(values)})


def _table(directory):
    table, _ = read_results(directory)
    return table.drop(columns=list(NONDETERMINISTIC_COLUMNS))


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    """A finished six-point run (its study, directory and table)."""
    study = _study([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    directory = tmp_path_factory.mktemp("six") / "run"
    run_study(study, directory, progress=False)
    return study, directory, _table(directory)


def test_damaged_or_foreign_point_files_are_set_aside_and_run_again(tmp_path, six):
    study, original, expected = six
    directory = tmp_path / "run"
    shutil.copytree(original, directory)
    store = ResultStore(directory)
    store.results_path.unlink()
    p = study.points
    path = store.point_path
    # 0: truncated; 1: garbage; 2: the rows of point 3 copied over it; 3: intact;
    # 4: its own point id but another config's hash; 5: one scheme's row missing.
    data = path(p[0]).read_bytes()
    path(p[0]).write_bytes(data[: len(data) // 2])
    path(p[1]).write_bytes(b"this is not parquet")
    shutil.copyfile(path(p[3]), path(p[2]))
    table = pq.read_table(path(p[3]))
    metadata = json.loads(table.schema.metadata[b"dmoe"])
    metadata.update(point_id=p[4].point_id)
    pq.write_table(table.replace_schema_metadata(
        {**table.schema.metadata, b"dmoe": json.dumps(metadata).encode()}), path(p[4]))
    rows = pq.read_table(path(p[5])).to_pylist()
    metadata = json.loads(pq.read_table(path(p[5])).schema.metadata[b"dmoe"])
    store.write_point(p[5], rows[:1], metadata)
    assert [store.is_done(point) for point in p] == [False, False, False, True, False, False]

    lines = []
    summary = run_study(study, directory, progress=False, log=lines.append)
    assert (summary.points_run, summary.points_skipped) == (5, 1)
    assert len(lines) == 5
    for point, word in zip([p[0], p[1], p[2], p[4], p[5]],
                           ["Parquet", "Parquet", p[3].point_id, "config hash",
                            "one row per scheme"]):
        (line,) = [line for line in lines if f"{point.point_id}.parquet" in line]
        assert word in line and "corrupt" in line
    assert len(list(store.corrupt_dir.iterdir())) == 5
    pd.testing.assert_frame_equal(_table(directory), expected)


def test_the_final_table_needs_one_row_per_point_and_scheme(tmp_path, six):
    study, original, _ = six
    directory = tmp_path / "run"
    shutil.copytree(original, directory)
    store = ResultStore(directory)
    store.results_path.unlink()
    store.point_path(study.points[2]).unlink()
    with pytest.raises(RuntimeError, match=study.points[2].point_id):
        store.finalize(study.points, {})
    assert not store.results_path.exists()


def test_a_second_writer_is_refused_naming_the_holder_or_waits_for_it(tmp_path, capsys):
    study = _study([0.5, 1.0])
    directory = tmp_path / "run"
    config = tmp_path / "study.toml"
    config.write_text('num_tokens = 16\nschemes = ["des", "top_k"]\nimportance = [0.5, 1.0]\n'
                      '[phy]\nfidelity = "ideal"\n[channel]\nnum_subcarriers = 8\n')
    holder = ResultStore(directory)
    with holder.lock():
        with pytest.raises(RunDirectoryBusy, match=f"pid {os.getpid()}"):
            run_study(study, directory, progress=False)
        assert main(["run", str(config), "--out", str(directory), "--quiet", "--no-plot"]) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and f"pid {os.getpid()}" in error
        assert "--wait" in error and not holder.manifest_path.exists()

        waiting, lines, outcome = threading.Event(), [], {}

        def log(line):
            lines.append(line)
            waiting.set()

        def second():
            outcome["summary"] = run_study(study, directory, progress=False, wait=True,
                                           log=log)
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(timeout=120), "the waiting run never said it waits"
        assert thread.is_alive() and not holder.manifest_path.exists()
        assert f"pid {os.getpid()}" in lines[0]
    thread.join(timeout=300)
    assert outcome["summary"].points_run == 2 and holder.results_path.is_file()


def test_temporary_files_are_removed_only_when_their_writer_is_gone(tmp_path):
    study = _study([0.5, 1.0])
    directory = tmp_path / "run"
    run_study(study, directory, progress=False)
    store = ResultStore(directory)
    for point in study.points:
        store.point_path(point).unlink()
    points = store.points_dir
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        mine = points / f".{study.points[0].point_id}.parquet.pid{live.pid}.a1.tmp"
        gone = points / f".{study.points[1].point_id}.parquet.pid{_dead_pid()}.b2.tmp"
        for path in (mine, gone):
            path.write_bytes(b"PAR1 half")
        run_study(study, directory, progress=False)
        assert mine.exists() and not gone.exists()
    finally:
        live.kill()
        live.wait()


def test_result_files_follow_the_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        run_study(_study([0.5, 1.0]), tmp_path / "run", progress=False)
    finally:
        os.umask(previous)
    store = ResultStore(tmp_path / "run")
    files = [store.manifest_path, store.results_path, tmp_path / "run" / "config.toml",
             *store.points_dir.glob("*.parquet")]
    assert len(files) == 5
    assert {oct(path.stat().st_mode & 0o777) for path in files} == {oct(0o664)}


def test_a_corrupt_manifest_is_named(tmp_path, capsys, six):
    study, original, _ = six
    directory = tmp_path / "run"
    shutil.copytree(original, directory)
    (directory / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json"):
        run_study(study, directory, progress=False)
    with pytest.raises(ValueError, match="manifest.json"):
        read_results(directory)
    assert main(["plot", str(directory)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "manifest.json" in error

"""Every user error of ``dmoe`` is one line on stderr naming the key, file or option (exit 2);
anything else (a bug) keeps its traceback. Studies here are PHY-free and tiny."""

import os
import shutil

import numpy as np
import pytest

from dmoe.cosim import _cmd_select_demo, models
from dmoe.cosim.cli import main
from dmoe.cosim.executors import make_executor
from dmoe.cosim.runner import run_study
from dmoe.cosim.store import ResultStore
from dmoe.cosim.study import load_study

STUDY = ('num_tokens = 16\nschemes = ["des", "top_k"]\nimportance = [0.5, 0.8, 1.0]\n'
         '[phy]\nfidelity = "ideal"\n[channel]\nnum_subcarriers = 8\n')


def _one_line(capsys):
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert "Traceback" not in error
    return error


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    return path


@pytest.mark.parametrize("where", ["a file", "under a file", "not writable"])
def test_an_unusable_out_is_one_line_and_nothing_is_written(tmp_path, capsys, study_file,
                                                            where):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    if where == "a file":
        out = blocker
    elif where == "under a file":
        out = blocker / "run"
    elif os.geteuid() == 0:
        out = "/sys/dmoe-test-run"  # root may write anywhere a plain mode allows; not /sys
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "run"
    assert main(["run", str(study_file), "--out", str(out), "--quiet", "--no-plot"]) == 2
    error = _one_line(capsys)
    assert "--out" in error and str(out) in error
    assert blocker.read_text() == "x"
    assert out == blocker or not os.path.exists(out)


def test_bad_options_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--workers", "many"])
    assert info.value.code == 2
    assert "--workers" in _one_line(capsys)


def test_a_bug_is_not_reported_as_bad_input(monkeypatch):
    for error in (TypeError("a bug"), ImportError("a broken installation")):
        def broken(args, error=error):
            raise error
        monkeypatch.setattr(_cmd_select_demo, "run", broken)
        with pytest.raises(type(error)):
            main(["select-demo"])


def test_ray_missing_is_a_user_error(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ValueError, match="--executor ray needs Ray"):
        make_executor("ray")


def test_study_paths_and_encodings(tmp_path, capsys, study_file):
    out = tmp_path / "out"
    assert main(["run", str(tmp_path), "--out", str(out), "--quiet"]) == 2
    error = _one_line(capsys)
    assert str(tmp_path) in error and "is a directory" in error

    latin = tmp_path / "latin.toml"
    latin.write_bytes("# r\xe9sum\xe9\nnum_tokens = 16\n".encode("latin-1"))
    assert main(["run", str(latin), "--out", str(out), "--quiet"]) == 2
    error = _one_line(capsys)
    assert str(latin) in error and "UTF-8" in error and "line 1" in error

    garbage = tmp_path / "garbage.toml"
    garbage.write_text("num_tokens = = 3\n")
    assert main(["run", str(garbage), "--out", str(out), "--quiet"]) == 2
    assert str(garbage) in _one_line(capsys)
    assert not out.exists()

    # A byte-order mark (what some Windows editors write) is not an error.
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + STUDY.encode("utf-8"))
    assert [p.key for p in load_study(bom).points] == \
        [p.key for p in load_study(study_file).points]


@pytest.mark.parametrize("values", [[1, 1.0], [0.5, 1, 1.0]])
def test_one_sweep_value_written_as_int_and_float_is_refused(tmp_path, capsys, values):
    with pytest.raises(ValueError, match="importance"):
        load_study({"importance": values})
    config = tmp_path / "twice.toml"
    config.write_text(f"importance = {values}\n")
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "importance" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_seed_too_large_for_the_results_table_is_refused(tmp_path, capsys):
    config = tmp_path / "seed.toml"
    config.write_text("seed = 100000000000000000000000\n")
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "'seed'" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_equal_numbers_in_other_spellings_are_one_value():
    for key, values in (("importance", [0.0, -0.0]),
                        ("layer_importance", [[1, 0.5], [1.0, 0.5]])):
        with pytest.raises(ValueError, match=f"'{key}' lists a value more than once"):
            load_study({key: values})


def test_a_cache_dir_that_is_a_file_is_refused_before_training(tmp_path, monkeypatch, capsys,
                                                               study_file):
    from dmoe.moe import defaults
    cache = tmp_path / "cache-file"
    cache.write_text("x")
    monkeypatch.setenv("DMOE_CACHE_DIR", str(cache))
    monkeypatch.setattr(defaults, "_MEMO", {})
    monkeypatch.setattr(defaults, "train_moe", lambda config: pytest.fail("trained"))
    models._load_model.cache_clear()
    try:
        assert main(["run", str(study_file), "--out", str(tmp_path / "out"), "--quiet"]) == 2
        error = _one_line(capsys)
        assert "DMOE_CACHE_DIR" in error and str(cache) in error
        with pytest.raises(ValueError, match="DMOE_CACHE_DIR"):
            defaults.load_default_moe("digits")
        monkeypatch.setenv("DMOE_CACHE_DIR", str(cache / "below"))
        with pytest.raises(ValueError, match="lies under"):
            defaults.load_default_moe("digits")
    finally:
        models._load_model.cache_clear()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"garbage, not a trace", b"PK\x03\x04truncated zip"])
def test_a_garbage_trace_names_the_file_and_the_key(tmp_path, capsys, content):
    trace = tmp_path / "trace.npz"
    trace.write_bytes(content)
    config = tmp_path / "trace.toml"
    config.write_text(f'num_tokens = 16\n[phy]\nfidelity = "ideal"\n'
                      f'[moe]\ntask = "trace"\ntrace_path = "{trace}"\ntrace_width = 8\n')
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    error = _one_line(capsys)
    assert str(trace) in error and "moe.trace_path" in error
    assert not (tmp_path / "out").exists()


def test_a_readable_trace_still_loads(tmp_path):
    from dmoe.moe.trace import load_trace
    gates = np.full((3, 2, 4), 0.25, np.float32)
    np.savez(tmp_path / "ok.npz", gates=gates)
    np.testing.assert_allclose(load_trace(tmp_path / "ok.npz"), gates)
    with pytest.raises(FileNotFoundError, match="trace_path"):
        load_trace(tmp_path / "missing.npz")


def test_plot_of_a_half_finished_run_says_how_many_points_are_missing(tmp_path, capsys,
                                                                       study_file):
    out = tmp_path / "run"
    assert main(["run", str(study_file), "--out", str(out), "--quiet", "--no-plot"]) == 0
    store = ResultStore(out)
    study = load_study(study_file)
    store.results_path.unlink()
    store.point_path(study.points[1]).unlink()
    store.point_path(study.points[2]).write_bytes(b"damaged")
    capsys.readouterr()
    assert main(["plot", str(out), "--format", "png"]) == 0
    captured = capsys.readouterr()
    assert "2 of 3 point(s)" in captured.err and "dmoe run" in captured.err
    assert (out / "figures" / "tradeoff.png").is_file()

    figures_file = tmp_path / "figures-file"
    figures_file.write_text("x")
    assert main(["plot", str(out), "--out", str(figures_file)]) == 2
    assert "--out" in _one_line(capsys)

    run_study(study, out, progress=False)  # finish it: nothing to say any more
    capsys.readouterr()
    assert main(["plot", str(out), "--format", "png"]) == 0
    assert "not finished" not in capsys.readouterr().err
    shutil.rmtree(out / "figures")

    assert main(["export", str(out), "--out", str(figures_file / "results.nc")]) == 2
    assert "--out" in _one_line(capsys)

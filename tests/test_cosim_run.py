"""Sweeps through the store and the CLI: determinism, resume, bad configs, plots."""

import json

import pandas as pd
import pytest

from dmoe.cosim.cli import main
from dmoe.cosim import NONDETERMINISTIC_COLUMNS
from dmoe.cosim.plots import FIGURES, _synthetic_table, plot_results
from dmoe.cosim.runner import SerialExecutor, run_study
from dmoe.cosim.store import ResultStore, read_results
from dmoe.cosim.study import load_study

SMALL = {"num_tokens": 32, "schemes": ["des", "top_k"], "importance": [0.6, 1.0],
         "channel": {"num_subcarriers": 16}}


def _table(directory):
    table, _ = read_results(directory)
    return table.drop(columns=list(NONDETERMINISTIC_COLUMNS))


class _Interrupted(SerialExecutor):
    """Runs ``stop_after`` points, then behaves like Ctrl-C."""

    def __init__(self, stop_after):
        self.stop_after = stop_after

    def map(self, function, items):
        for count, item in enumerate(items):
            if count == self.stop_after:
                raise KeyboardInterrupt
            yield item, function(item)


def test_resumed_run_equals_uninterrupted_and_reruns_are_identical(tmp_path):
    study = load_study(SMALL)
    whole = tmp_path / "whole"
    summary = run_study(study, whole, progress=False)
    assert (summary.points_total, summary.points_run) == (2, 2)

    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        run_study(study, broken, executor=_Interrupted(stop_after=1), progress=False)
    store = ResultStore(broken)
    assert [store.is_done(p) for p in study.points] == [True, False]
    assert not store.results_path.exists()
    # A write cut short leaves only a temporary file: never read as a finished point.
    half = store.points_dir / f".{study.points[1].point_id}.parquet.123.tmp"
    half.write_bytes(b"PAR1 half a file")
    assert not store.is_done(study.points[1])

    again = run_study(study, broken, progress=False)
    assert (again.points_run, again.points_skipped) == (1, 1)
    assert not half.exists()
    pd.testing.assert_frame_equal(_table(whole), _table(broken))

    # Same config and seed in a fresh directory: the identical table.
    fresh = tmp_path / "fresh"
    run_study(load_study(SMALL), fresh, progress=False)
    pd.testing.assert_frame_equal(_table(whole), _table(fresh))


def test_results_table_layout_and_metadata(tmp_path):
    run_study(load_study(SMALL), tmp_path / "run", progress=False)
    table, metadata = read_results(tmp_path / "run")
    assert len(table) == 2 * 2
    for column in ("scheme", "importance", "accuracy", "energy_per_token_j",
                   "experts_per_token", "latency_per_token_s", "drop_rate",
                   "channel.num_subcarriers", "point_seed", "execution_mode", "device"):
        assert column in table.columns
    assert list(table["importance"]) == [0.6, 0.6, 1.0, 1.0]
    assert {"versions", "device", "seed", "config", "execution_mode"} <= set(metadata)
    assert metadata["versions"]["tensorflow"] and metadata["config"]["importance"] == [0.6, 1.0]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["axes"] == {"importance": [0.6, 1.0]}
    assert load_study(tmp_path / "run" / "config.toml").points[1].key == \
        load_study(SMALL).points[1].key


def test_a_directory_of_another_study_is_refused(tmp_path):
    run_study(load_study({**SMALL, "importance": 0.6}), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="different study"):
        run_study(load_study(SMALL), tmp_path / "run", progress=False)


@pytest.mark.parametrize("body, key", [
    ("bogus = 1\n", "bogus"),
    ('schemes = ["des", "magic"]\n', "schemes"),
    ("[channel]\ntx_power_dbm = -10.0\n", "channel.tx_power_dbm"),
    ("importance = 2.0\n", "importance"),
    ("importance = []\n", "importance"),
    ("max_experts = 9\n", "max_experts"),     # found against the model's K = 8
])
def test_cli_rejects_bad_studies_and_writes_nothing(tmp_path, capsys, body, key):
    config = tmp_path / "bad.toml"
    config.write_text(body)
    out = tmp_path / "out"
    code = main(["run", str(config), "--out", str(out), "--quiet"])
    error = capsys.readouterr().err.strip()
    assert code != 0
    assert len(error.splitlines()) == 1 and key in error
    assert not out.exists()


def test_cli_run_and_plot(tmp_path, capsys):
    config = tmp_path / "study.toml"
    config.write_text('num_tokens = 16\nschemes = ["des", "top_k"]\nimportance = [0.5, 1.0]\n'
                      '[channel]\nnum_subcarriers = 16\n')
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "skipped channel_sensitivity" in printed
    assert (out / "figures" / "tradeoff.png").is_file()
    assert (out / "figures" / "energy_saving_vs_rho.pdf").is_file()
    assert not (out / "figures" / "channel_sensitivity.png").exists()
    # Rerun: nothing left to do.
    assert main(["run", str(config), "--out", str(out), "--quiet", "--no-plot"]) == 0
    assert "0 point(s) run, 2 already done" in capsys.readouterr().out


def test_plots_draw_every_figure_the_data_supports(tmp_path):
    run = tmp_path / "synthetic"
    run.mkdir()
    _synthetic_table().to_parquet(run / "results.parquet")
    axes = {"importance": [], "channel.num_subcarriers": [], "channel.tx_power_dbm": [],
            "channel.model": []}
    (run / "manifest.json").write_text(json.dumps({"axes": axes, "points": []}))
    lines = []
    written = plot_results(run, log=lines.append)
    assert set(written) == set(FIGURES)
    for paths in written.values():
        assert {p.suffix for p in paths} == {".png", ".pdf"}
        assert all(p.stat().st_size > 1000 for p in paths)
    assert not any(line.startswith("skipped") for line in lines)

"""``dmoe run --executor ...`` on the command line: executor settings and failed points."""

from dmoe.cosim.cli import main
from dmoe.cosim.store import ResultStore
from dmoe.cosim.study import load_study

ONE_POINT = ('num_tokens = 16\nschemes = ["des", "top_k"]\nimportance = 0.8\n'
             '[channel]\nnum_subcarriers = 8\n')


def test_dead_point_exits_1_with_one_message_and_a_rerun_completes(tmp_path, monkeypatch,
                                                                     capsys):
    config = tmp_path / "one.toml"
    config.write_text(ONE_POINT)
    (point,) = load_study(config).points
    out = tmp_path / "run"
    monkeypatch.setenv("DMOE_FAULT_KILL_POINT", point.point_id)   # dies at every attempt
    monkeypatch.delenv("DMOE_FAULT_ONCE_DIR", raising=False)
    status = main(["run", str(config), "--out", str(out), "--executor", "process",
                   "--workers", "1", "--max-retries", "0", "--no-plot", "--quiet"])
    error = capsys.readouterr().err
    assert status == 1
    assert "1 point(s) failed" in error and point.point_id in error and "Traceback" not in error
    assert not ResultStore(out).is_done(point) and not ResultStore(out).results_path.exists()

    monkeypatch.delenv("DMOE_FAULT_KILL_POINT")
    assert main(["run", str(config), "--out", str(out), "--no-plot", "--quiet"]) == 0
    assert ResultStore(out).is_done(point) and ResultStore(out).results_path.exists()


def test_settings_of_another_executor_are_rejected(tmp_path, capsys):
    config = tmp_path / "one.toml"
    config.write_text(ONE_POINT)
    status = main(["run", str(config), "--out", str(tmp_path / "run"), "--executor", "ray",
                   "--workers", "2", "--no-plot", "--quiet"])
    assert status == 2
    assert "workers do(es) not apply to the 'ray' executor" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

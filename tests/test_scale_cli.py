"""``dmoe run --executor ...`` on the command line: executor settings and failed points."""

from dmoe.cosim.cli import main

ONE_POINT = ('num_tokens = 16\nschemes = ["des", "top_k"]\nimportance = 0.8\n'
             '[channel]\nnum_subcarriers = 8\n')


def test_settings_of_another_executor_are_rejected(tmp_path, capsys):
    config = tmp_path / "one.toml"
    config.write_text(ONE_POINT)
    status = main(["run", str(config), "--out", str(tmp_path / "run"), "--executor", "ray",
                   "--workers", "2", "--no-plot", "--quiet"])
    assert status == 2
    assert "workers do(es) not apply to the 'ray' executor" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

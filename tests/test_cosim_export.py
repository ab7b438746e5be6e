"""Results as labelled arrays: the xarray Dataset, netCDF and CSV against the Parquet table."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

xr = pytest.importorskip("xarray")

from dmoe.cosim.cli import main  # noqa: E402
from dmoe.cosim import METRIC_COLUMNS  # noqa: E402
from dmoe.cosim.export import export_results, to_xarray  # noqa: E402
from dmoe.cosim.runner import SerialExecutor, run_study  # noqa: E402
from dmoe.cosim.store import read_results  # noqa: E402
from dmoe.cosim.study import load_study  # noqa: E402

SMALL = {"num_tokens": 16, "schemes": ["des", "top_k"], "importance": [1.0, 0.6],
         "channel": {"num_subcarriers": 16, "tx_power_dbm": [0, 23]}, "moe": {"task": "digits"}}
AXES = {"importance": [1.0, 0.6], "channel.tx_power_dbm": [0.0, 23.0]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("export") / "run"
    run_study(load_study(SMALL), directory, progress=False)
    return directory


def _cell(dataset, row):
    return dataset.sel({"importance": row["importance"],
                        "channel.tx_power_dbm": row["channel.tx_power_dbm"],
                        "scheme": row["scheme"]})


def _assert_rows_equal(dataset, table, columns):
    for _, row in table.iterrows():
        cell = _cell(dataset, row)
        for column in columns:
            expected, got = row[column], cell[column].item()
            if isinstance(expected, str):
                assert got == expected, column
            else:
                np.testing.assert_equal(got, expected, err_msg=column)


def test_dataset_has_the_grid_every_metric_and_the_table_values(run_dir):
    table, metadata = read_results(run_dir)
    dataset = read_results(run_dir, as_="xarray")
    assert list(dataset.dims) == ["importance", "channel.tx_power_dbm", "scheme"]
    for key, values in AXES.items():          # every swept value, in the study's order
        assert list(dataset[key].values) == values
    assert list(dataset["scheme"].values) == ["des", "top_k"]
    assert set(METRIC_COLUMNS) <= set(dataset.data_vars)
    for name, meaning in METRIC_COLUMNS.items():
        assert dataset[name].attrs["description"] == meaning
    # Every row of the Parquet table is one cell, with the same value in every variable.
    assert len(table) == dataset.sizes["importance"] * dataset.sizes["channel.tx_power_dbm"] * 2
    _assert_rows_equal(dataset, table, list(dataset.data_vars))
    # Run metadata and the settings that do not vary are attributes.
    assert dataset.attrs["seed"] == metadata["seed"]
    assert json.loads(dataset.attrs["versions"]) == metadata["versions"]
    assert json.loads(dataset.attrs["config"]) == json.loads(json.dumps(metadata["config"]))
    assert dataset.attrs["setting.channel.num_subcarriers"] == 16
    assert "channel.num_subcarriers" not in dataset.data_vars
    xr.testing.assert_identical(to_xarray(run_dir), dataset)


def test_netcdf_and_csv_round_trip(run_dir, tmp_path):
    dataset = read_results(run_dir, as_="xarray")
    path = export_results(run_dir, "netcdf", out=tmp_path / "r.nc")
    xr.testing.assert_identical(xr.load_dataset(path), dataset)

    assert main(["export", str(run_dir), "--format", "csv"]) == 0
    frame = pd.read_csv(run_dir / "results.csv")
    table, _ = read_results(run_dir)
    assert len(frame) == len(table)
    merged = table.merge(frame, on=["importance", "channel.tx_power_dbm", "scheme"],
                         suffixes=("", "_csv"))
    assert len(merged) == len(table)
    for column in METRIC_COLUMNS:
        np.testing.assert_allclose(merged[column + "_csv"], merged[column], rtol=1e-12)


class _StopAfter(SerialExecutor):
    def __init__(self, count):
        self.count = count

    def map(self, function, items):
        for done, item in enumerate(items):
            if done == self.count:
                raise KeyboardInterrupt
            yield item, function(item)


def test_unfinished_points_are_missing_values(run_dir, tmp_path):
    partial = tmp_path / "partial"
    with pytest.raises(KeyboardInterrupt):
        run_study(load_study(SMALL), partial, executor=_StopAfter(1), progress=False)
    dataset = read_results(partial, as_="xarray")
    assert dict(dataset.sizes) == {"importance": 2, "channel.tx_power_dbm": 2, "scheme": 2}
    first = dataset.isel({"importance": 0, "channel.tx_power_dbm": 0})
    rest = dataset["accuracy"].values.reshape(4, 2)[1:]
    assert np.isfinite(first["accuracy"].values).all() and np.isnan(rest).all()
    assert dataset["point_seed"].dtype == np.float64          # an int column with holes
    assert (dataset["device"].values.reshape(4, 2)[1:] == "").all()
    # The finished point equals the same point of the complete run.
    whole = read_results(run_dir, as_="xarray").isel(
        {"importance": 0, "channel.tx_power_dbm": 0})
    for name in METRIC_COLUMNS:
        if name != "solver_time_s":
            np.testing.assert_equal(first[name].values, whole[name].values, err_msg=name)


def test_bad_format_and_missing_xarray_are_explained(run_dir, monkeypatch, capsys):
    with pytest.raises(ValueError, match="as_"):
        read_results(run_dir, as_="polars")
    with pytest.raises(ValueError, match="format"):
        export_results(run_dir, "hdf")
    monkeypatch.setitem(sys.modules, "xarray", None)   # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'dmoe\[xarray\]'"):
        read_results(run_dir, as_="xarray")
    assert main(["export", str(run_dir)]) == 2
    assert "pip install" in capsys.readouterr().err

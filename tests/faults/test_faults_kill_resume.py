"""Kill a real ``dmoe run`` at a random point file, resume it, get the uninterrupted table.

The driver is SIGKILLed (``DMOE_FAULT_KILL_DRIVER=<point id>:<stage>``, see
``dmoe.cosim.store``) either while that point's file is being written (its temporary file is
complete, not yet in place) or just after it is in place. The point and the stage are drawn
from a seeded generator (``DMOE_FAULT_SEED``, default 0, printed on failure). The study is tiny
(digits, 16 tokens, 4 points, PHY abstraction): the time goes into starting the processes.
"""

import os
import random
import signal
import subprocess
import sys

import pandas as pd
import pytest

from dmoe.cosim.metrics import NONDETERMINISTIC_COLUMNS
from dmoe.cosim.runner import run_study
from dmoe.cosim.store import ResultStore, read_results
from dmoe.cosim.study import load_study

STUDY = ('num_tokens = 16\nschemes = ["des", "top_k"]\nimportance = [0.5, 0.7, 0.9, 1.0]\n'
         '[phy]\nfidelity = "abstraction"\n[channel]\nnum_subcarriers = 8\n')
SEED = int(os.environ.get("DMOE_FAULT_SEED", "0"))


def _table(directory):
    table, _ = read_results(directory)
    return table.drop(columns=list(NONDETERMINISTIC_COLUMNS))


def _dmoe(*args, fault=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("DMOE_FAULT_KILL_DRIVER", None)
    env.pop("DMOE_FAULT_KILL_POINT", None)
    if fault is not None:
        env["DMOE_FAULT_KILL_DRIVER"] = fault
    command = [sys.executable, "-c", "import sys; from dmoe.cosim.cli import main; "
               "sys.exit(main())", "run", *map(str, args), "--quiet", "--no-plot"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "study.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def uninterrupted(study_file, tmp_path_factory):
    directory = tmp_path_factory.mktemp("whole") / "run"
    run_study(load_study(study_file), directory, progress=False)
    return _table(directory)


@pytest.mark.parametrize("executor", [["serial"], ["process", "--workers", "1"]],
                         ids=["serial", "process"])
def test_a_run_killed_at_a_random_point_file_resumes_to_the_uninterrupted_table(
        tmp_path, study_file, uninterrupted, executor):
    points = load_study(study_file).points
    rng = random.Random(f"{SEED}-{executor[0]}")
    victim, stage = rng.choice(points), rng.choice(["writing", "written"])
    why = f"DMOE_FAULT_SEED={SEED}: killed at point {victim.index} ({stage})"
    out = tmp_path / "run"

    killed = _dmoe(study_file, "--out", out, "--executor", *executor,
                   fault=f"{victim.point_id}:{stage}")
    assert killed.returncode == -signal.SIGKILL, f"{why}\n{killed.stderr[-3000:]}"
    store = ResultStore(out)
    assert not store.results_path.exists(), why
    assert store.point_path(victim).exists() == (stage == "written"), why
    leftovers = list(store.points_dir.glob(".*.tmp"))
    assert len(leftovers) == (stage == "writing"), why

    resumed = _dmoe(study_file, "--out", out)
    assert resumed.returncode == 0, f"{why}\n{resumed.stderr[-3000:]}"
    done = sum(store.point_path(p).exists() for p in points)
    assert done == len(points) and not list(store.points_dir.glob(".*.tmp")), why
    pd.testing.assert_frame_equal(_table(out), uninterrupted, obj=why)

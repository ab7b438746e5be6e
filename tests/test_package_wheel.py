"""The wheel: built without a warning, installed outside the source tree, it runs a study.

The fresh venv gets dmoe from the wheel only (``pip install --no-deps``); its dependencies are
those of the test's own environment, reached through a ``.pth`` path line. A path line is not
scanned for further ``.pth`` files, so the editable install of the checkout is not loaded there:
every ``dmoe`` module and file must come from the wheel.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY_STUDY = """\
seed = 3
num_tokens = 16
schemes = ["des", "jesa", "top_k"]
importance = 0.8

[channel]
model = "rayleigh"
num_subcarriers = 16

[moe]
task = "digits"
"""


def _copy_sources(destination):
    """pyproject.toml, README.md and the package folders: what a build reads."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    destination.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, destination / name)
    for folder in sorted(set(project["tool"]["setuptools"]["package-dir"].values())):
        shutil.copytree(ROOT / folder, destination / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command} failed:\n{output[-4000:]}"
    return result.stdout, output


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("setuptools", minversion="77")
    base = tmp_path_factory.mktemp("wheel")
    source, out = base / "src", base / "dist"
    _copy_sources(source)
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",
                                                           "PYTHONDONTWRITEBYTECODE")}
    # The build backend itself (what `python -m build --no-isolation` calls): its output
    # alone, no network, and the setuptools version that pyproject.toml asks for.
    built, output = _run([sys.executable, "-c",
                   "import sys, setuptools.build_meta as backend; "
                   "print('built', backend.build_wheel(sys.argv[1]))", str(out)],
                  cwd=source, env=env)
    return out / built.strip().splitlines()[-1].split()[-1], output


def test_wheel_builds_without_warnings(wheel):
    path, output = wheel
    assert path.is_file() and path.name.startswith("dmoe-")
    lines = [line for line in output.splitlines() if "warn" in line.lower()
             or "ignored" in line.lower() or "deprecat" in line.lower()]
    assert not lines, "\n".join(lines)


def test_installed_wheel_runs_a_study_outside_the_source_tree(wheel, tmp_path):
    path, _ = wheel
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c",
                      "import sysconfig; print(sysconfig.get_paths()['purelib'])"])[0].strip())
    # Install before the dependencies become visible, so pip sees no dmoe already installed.
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "--quiet", str(path)])
    (site / "_dmoe_test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    where, _ = _run([str(python), "-c",
                  "import dmoe.phy, dmoe.moe, dmoe.scheduler, dmoe.cosim\n"
                  "from dmoe.cosim.study import default_study_path, load_study\n"
                  "for m in (dmoe.phy, dmoe.moe, dmoe.scheduler, dmoe.cosim):\n"
                  "    print(m.__file__)\n"
                  "print(default_study_path())\n"
                  "print(len(load_study().points))\n"], cwd=work, env=env)
    lines = where.strip().splitlines()
    for line in lines[-5:-1]:
        assert Path(line).resolve().is_relative_to(site.resolve()), line
        assert not Path(line).resolve().is_relative_to(ROOT), line
    assert int(lines[-1]) > 0

    (work / "tiny.toml").write_text(TINY_STUDY, encoding="utf-8")
    dmoe = env_dir / "bin" / "dmoe"
    output, _ = _run([str(dmoe), "run", "tiny.toml", "--out", "out", "--quiet"], cwd=work, env=env)
    assert (work / "out" / "results.parquet").is_file(), output
    assert "mean over 1 point(s)" in output
    assert list((work / "out" / "figures").glob("*.png")), output

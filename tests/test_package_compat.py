"""The import-time version guard and the package layout."""

import subprocess
import sys
from importlib import metadata

import pytest

from dmoe.common import versions as _compat


def _fake_versions(monkeypatch, versions):
    real = metadata.version

    def version(name):
        if name in versions:
            if versions[name] is None:
                raise metadata.PackageNotFoundError(name)
            return versions[name]
        return real(name)

    monkeypatch.setattr(_compat.metadata, "version", version)


def test_installed_environment_is_supported():
    _compat.check_versions()


@pytest.mark.parametrize(
    "versions, culprit",
    [
        ({"tensorflow": "2.13.1"}, "tensorflow 2.13.1"),
        ({"tensorflow": "2.20.0"}, "tensorflow 2.20.0"),
        ({"numpy": "2.2.0"}, "numpy 2.2.0"),
        ({"sionna-no-rt": "2.0.0"}, "sionna-no-rt 2.0.0"),
        ({"sionna-no-rt": None}, "sionna-no-rt is not installed"),
    ],
)
def test_unsupported_version_fails_with_one_line_naming_the_supported_range(monkeypatch, versions, culprit):
    _fake_versions(monkeypatch, versions)
    with pytest.raises(ImportError) as info:
        _compat.check_versions()
    message = str(info.value)
    assert "\n" not in message
    assert culprit in message
    for name in _compat.SUPPORTED_VERSIONS:
        assert name in message


def test_tensorflow_found_under_its_cpu_distribution_name(monkeypatch):
    _fake_versions(monkeypatch, {"tensorflow": None, "tensorflow-cpu": "2.19.0"})
    _compat.check_versions(("tensorflow",))


def _imported_after(module):
    """Whether importing ``module`` in a fresh interpreter loads TensorFlow, Sionna."""
    code = (f"import sys, {module}; "
            "print('tensorflow' in sys.modules, 'sionna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_scheduler_imports_no_tensorflow():
    # scheduler/ is pure numpy/scipy: importing it must not pull in TensorFlow or Sionna.
    assert _imported_after("dmoe.scheduler") == ["False", "False"]


def test_moe_and_the_shared_vocabulary_import_no_sionna():
    # Only phy/ imports Sionna; the vocabulary module imports nothing heavy at all.
    assert _imported_after("dmoe.moe")[1] == "False"
    assert _imported_after("dmoe.common") == ["False", "False"]
    assert _imported_after("dmoe.cosim") == ["False", "False"]


def test_console_script_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "dmoe.cosim.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("select-demo", "run", "plot", "phy-curves"):
        assert command in out.stdout

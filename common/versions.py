"""Version guard for the numerical stack, checked before TensorFlow or Sionna is imported.

A wrong TensorFlow, NumPy or Sionna version otherwise fails deep inside TensorFlow with a
traceback that says nothing about versions. Here it fails with one line that names the
supported ranges.
"""

from importlib import metadata

__all__ = ["SUPPORTED_VERSIONS", "check_versions"]

# distribution name -> (lowest supported, first unsupported); Sionna 1.2 documents TF 2.14-2.19.
SUPPORTED_VERSIONS = {
    "tensorflow": ((2, 14), (2, 20)),
    "numpy": ((1, 26), (2, 2)),
    "sionna-no-rt": ((1, 2), (1, 3)),
}

# TensorFlow ships under several distribution names (CPU-only and CUDA builds).
_ALIASES = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly")}


def _installed(name):
    for dist in _ALIASES.get(name, (name,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _release(version):
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _describe():
    return ", ".join(
        f"{name} >={lo[0]}.{lo[1]},<{hi[0]}.{hi[1]}" for name, (lo, hi) in SUPPORTED_VERSIONS.items()
    )


def check_versions(names=("tensorflow", "numpy", "sionna-no-rt")):
    """Raise ``ImportError`` with one readable line if an installed version is unsupported.

    Parameters
    ----------
    names : iterable of str
        Distributions to check, keys of :data:`SUPPORTED_VERSIONS`.
    """
    problems = []
    for name in names:
        found = _installed(name)
        lo, hi = SUPPORTED_VERSIONS[name]
        if found is None:
            problems.append(f"{name} is not installed")
        elif not lo <= _release(found) < hi:
            problems.append(f"{name} {found} is installed")
    if problems:
        raise ImportError(
            f"dmoe: unsupported environment ({'; '.join(problems)}); dmoe supports {_describe()}. "
            "Install the pinned set with `pip install -c constraints.txt -e .`."
        )

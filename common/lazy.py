"""Packages whose public names are imported on first use (PEP 562 module ``__getattr__``).

``import dmoe.phy`` or ``import dmoe.cosim`` then costs nothing; TensorFlow and Sionna load
when a name that needs them is first used.
"""

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package, homes, before=None):
    """``__getattr__`` and ``__dir__`` for a package whose names live in its modules.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    homes : dict of str -> str
        Public name -> module that defines it: a module of the package (``"config"``) or a
        dotted absolute name (``"dmoe.common"``).
    before : callable or None
        Called once, before the first of these imports (e.g. a version check).

    Output
    ------
    getattr, dir : callables
        To assign to the package's ``__getattr__`` and ``__dir__``.
    """
    module = importlib.import_module(package)
    checked = []

    def __getattr__(name):
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if before is not None and not checked:
            before()
            checked.append(True)
        home = homes[name]
        source = importlib.import_module(home if "." in home else f"{package}.{home}")
        value = getattr(source, name)
        setattr(module, name, value)
        return value

    def __dir__():
        return sorted(set(vars(module)) | set(homes))

    return __getattr__, __dir__

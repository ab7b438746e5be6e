"""The DMoE co-simulation: protocol rounds, sweeps, results, plots and the ``dmoe`` CLI.

A study (TOML, validated by :class:`StudyConfig`) expands into independent points
(:func:`load_study`); :func:`run_point` runs every scheme of one point through the protocol
(MoE gate -> CSI -> scheduler -> PHY dispatch -> experts -> PHY return -> combine);
:func:`run_study` runs the points through an executor into a resumable Parquet store and
:func:`plot_results` draws the standard figures. See ``docs/cosim.md``.

Names are imported on first use, so ``import dmoe.cosim`` (and the ``dmoe`` CLI) does not
import TensorFlow.
"""

import importlib

__all__ = [
    # configuration and studies
    "SCHEMES", "StudyConfig", "ChannelSection", "MoESection", "PhySection", "ExecutionSection",
    "config_reference", "Study", "Point", "load_study", "expand_study", "derive_seed",
    "default_study_path",
    # engine, the MoE interface, schemes, metrics
    "run_point", "MoEProtocol", "load_model", "METRIC_COLUMNS", "NONDETERMINISTIC_COLUMNS",
    "Tally", "Decision", "SchemeOptions", "decide", "register_scheme", "registered_schemes",
    # execution, results
    "Executor", "SerialExecutor", "RunSummary", "run_study", "ResultStore", "read_results",
    "plot_results",
]

_HOME = {
    "SCHEMES": "config", "StudyConfig": "config", "ChannelSection": "config",
    "MoESection": "config", "PhySection": "config", "ExecutionSection": "config",
    "config_reference": "config",
    "Study": "study", "Point": "study", "load_study": "study", "expand_study": "study",
    "derive_seed": "seeding", "default_study_path": "study",
    "run_point": "engine", "load_model": "models",
    "METRIC_COLUMNS": "metrics", "NONDETERMINISTIC_COLUMNS": "metrics", "Tally": "metrics",
    "Decision": "schemes", "SchemeOptions": "schemes", "decide": "schemes",
    "register_scheme": "schemes", "registered_schemes": "schemes",
    "Executor": "runner", "SerialExecutor": "runner", "RunSummary": "runner",
    "run_study": "runner",
    "ResultStore": "store", "read_results": "store",
    "plot_results": "plots",
}


def __getattr__(name):
    if name == "MoEProtocol":
        from dmoe.moe.protocol import MoEProtocol
        globals()[name] = MoEProtocol
        return MoEProtocol
    if name in _HOME:
        value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

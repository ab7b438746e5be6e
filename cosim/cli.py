"""The ``dmoe`` command line.

Each sub-command lives in its own module ``dmoe.cosim._cmd_<name>`` exposing
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
command runs, so ``dmoe select-demo`` never pays for importing TensorFlow.

A user error -- a bad option, study, key or file -- is one line on stderr naming it, and exit
status 2. User errors are the ``ValueError`` (pydantic's ``ValidationError``, TOML and Unicode
decoding errors included) and ``FileNotFoundError`` the commands raise for bad input; anything
else (a ``TypeError``, an ``ImportError``) is a bug or a broken installation and keeps its
traceback.
"""

import argparse
import importlib
import os
import sys

from dmoe.common.quiet import import_tensorflow_quietly

__all__ = ["main", "COMMANDS"]

# command name -> (module under dmoe.cosim, one-line help)
COMMANDS = {
    "select-demo": ("_cmd_select_demo", "solve random P1 instances with every scheme and print a table"),
    "run": ("_cmd_run", "run a co-simulation study (default: the shipped one) and plot it"),
    "plot": ("_cmd_plot", "draw the standard figures of a run directory (PNG and PDF)"),
    "phy-curves": ("_cmd_phy_curves", "BER/BLER/throughput vs SNR per MCS and channel model (CSV + PNG)"),
    "export": ("_cmd_export", "write a run directory's results as netCDF or CSV (xarray)"),
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``dmoe run: error: ... (see --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser():
    parser = _Parser(
        prog="dmoe",
        description="Link-level co-simulation of distributed Mixture-of-Experts inference.",
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up log (CUDA plugins, oneDNN)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        command_parser.set_defaults(_module=module_name)
        _load(module_name).add_arguments(command_parser)
    return parser


def _load(module_name):
    return importlib.import_module(f"dmoe.cosim.{module_name}")


def main(argv=None):
    """Entry point of the ``dmoe`` console script; returns the process exit code."""
    # GPU memory as needed, decided before any sub-command imports TensorFlow (an explicit
    # TF_FORCE_GPU_ALLOW_GROWTH in the environment wins).
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    elif args.command != "select-demo":
        import_tensorflow_quietly()
    try:
        return int(_load(args._module).run(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        # Bad input is reported as one line, not a traceback.
        text = " ".join(str(error).split()) or type(error).__name__
        print(f"dmoe {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dmoe {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

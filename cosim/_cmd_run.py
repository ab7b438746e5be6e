"""``dmoe run [CONFIG] --out DIR``: run a study (or the shipped default) and draw its figures."""

import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("config", nargs="?", default=None,
                        help="study TOML file (default: the shipped default study)")
    parser.add_argument("--out", default=None,
                        help="run directory (default: results/<config name>); rerunning into "
                             "it skips the points already done")
    parser.add_argument("--executor", choices=("serial", "process", "ray"), default="serial",
                        help="how points are run: serial (this process), process (a local "
                             "process pool), ray (a Ray cluster); results are identical")
    parser.add_argument("--workers", type=int, default=None,
                        help="process executor: worker processes (default: CPU cores)")
    parser.add_argument("--address", default=None,
                        help="ray executor: cluster address (default: a local instance)")
    parser.add_argument("--num-gpus", type=float, default=0.0,
                        help="ray: GPUs per point; process: GPUs of this machine, one worker "
                             "each")
    parser.add_argument("--max-retries", type=int, default=None,
                        help="process / ray: retries of a point whose worker died")
    parser.add_argument("--wait", action="store_true",
                        help="if another dmoe run is writing into --out, wait for it to finish "
                             "(default: exit with status 2 naming that process)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _executor(args):
    # make_executor rejects settings that do not apply to the chosen executor.
    from dmoe.cosim.executors import make_executor
    return make_executor(args.executor, workers=args.workers, address=args.address,
                         num_gpus=args.num_gpus, max_retries=args.max_retries)


def _print_summary(out):
    """Per-scheme means over all points: a first look before the figures."""
    from dmoe.cosim.store import read_results

    table, _ = read_results(out)
    columns = {"accuracy": "accuracy", "energy_per_token_j": "energy/token (mJ)",
               "experts_per_token": "experts/token/layer", "drop_rate": "drop rate",
               "latency_per_token_s": "latency/token (ms)"}
    means = table.groupby("scheme", sort=False)[list(columns)].mean()
    means["energy_per_token_j"] *= 1e3
    means["latency_per_token_s"] *= 1e3
    points = table["point_seed"].nunique()
    print(f"dmoe run: mean over {points} point(s):")
    print(means.rename(columns=columns).to_string(float_format=lambda v: f"{v:.4g}"))


def run(args):
    from dmoe.cosim.runner import run_study
    from dmoe.cosim.study import load_study

    from dmoe.cosim.store import check_output_directory

    study = load_study(args.config)  # ValueError on a bad study: nothing is written
    out = args.out or str(Path("results") / (Path(args.config).stem if args.config else "default"))
    check_output_directory(out)      # ValueError: a file, under a file, not writable
    executor = _executor(args)       # ValueError on settings of another executor
    print(f"dmoe run: {study.source}: {len(study.points)} point(s) x "
          f"{len(study.points[0].config.schemes)} scheme(s) -> {out} ({executor.name})")
    from dmoe.cosim.executors import PointsFailed
    try:
        summary = run_study(study, out, executor=executor, progress=not args.quiet,
                            wait=args.wait)
    except PointsFailed as error:  # the other points are stored; a rerun runs the missing ones
        print(f"dmoe run: {error}", file=sys.stderr)
        return 1
    print(f"dmoe run: {summary.points_run} point(s) run, {summary.points_skipped} already done, "
          f"{summary.wall_time_s:.1f} s; results: {summary.results_path}")
    _print_summary(out)
    if not args.no_plot:
        from dmoe.cosim.plots import plot_results
        plot_results(out, log=lambda line: print(f"dmoe plot: {line}"))
    return 0

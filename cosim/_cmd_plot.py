"""``dmoe plot DIR``: the standard figures of a run directory, as PNG and PDF."""

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("directory", help="run directory written by `dmoe run`")
    parser.add_argument("--out", default=None, help="figure directory (default: DIR/figures)")
    parser.add_argument("--format", nargs="+", default=["png", "pdf"], dest="formats",
                        choices=("png", "pdf", "svg"), help="file formats (default: png pdf)")


def run(args):
    import sys

    from dmoe.cosim.plots import plot_results
    from dmoe.cosim.store import ResultStore, check_output_directory

    store = ResultStore(args.directory)
    if not store.manifest_path.is_file():
        raise FileNotFoundError(f"{args.directory!r} is not a dmoe run directory (no "
                                "manifest.json)")
    if args.out is not None:
        check_output_directory(args.out)
    else:
        check_output_directory(store.directory / "figures", option="figure directory")
    total = len(store.read_manifest().get("points", []))
    finished = len(store.finished_ids())
    if not store.results_path.is_file() and finished < total:
        print(f"dmoe plot: {total - finished} of {total} point(s) of {args.directory!r} are "
              f"not finished; the figures show the {finished} finished (rerun `dmoe run` "
              f"with --out {args.directory!r} to finish the run)", file=sys.stderr)
    written = plot_results(args.directory, formats=tuple(args.formats), out=args.out,
                           log=lambda line: print(f"dmoe plot: {line}"))
    return 0 if written else 1

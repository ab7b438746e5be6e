"""``dmoe plot DIR``: the standard figures of a run directory, as PNG and PDF."""

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("directory", help="run directory written by `dmoe run`")
    parser.add_argument("--out", default=None, help="figure directory (default: DIR/figures)")
    parser.add_argument("--format", nargs="+", default=["png", "pdf"], dest="formats",
                        choices=("png", "pdf", "svg"), help="file formats (default: png pdf)")


def run(args):
    from dmoe.cosim.plots import plot_results

    written = plot_results(args.directory, formats=tuple(args.formats), out=args.out,
                           log=lambda line: print(f"dmoe plot: {line}"))
    return 0 if written else 1

"""``dmoe export DIR --format netcdf|csv``: a run directory's results as labelled arrays."""

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("directory", help="run directory written by `dmoe run`")
    parser.add_argument("--format", choices=("netcdf", "csv"), default="netcdf",
                        help="netcdf: the xarray Dataset (swept keys and scheme as dimensions); "
                             "csv: the same, one row per grid cell (default: netcdf)")
    parser.add_argument("--out", default=None,
                        help="output file (default: DIR/results.nc or DIR/results.csv)")


def run(args):
    from pathlib import Path

    from dmoe.cosim.export import export_results
    from dmoe.cosim.store import check_output_directory

    try:  # an optional dependency: missing, it is the user's to install, not a bug
        import xarray  # noqa: F401
    except ImportError:
        raise ValueError("dmoe export needs xarray: pip install 'dmoe[xarray]' (or: pip install "
                         "xarray h5netcdf)") from None
    if args.out is not None:
        if Path(args.out).is_dir():
            raise ValueError(f"--out {args.out!r} is a directory; give the output file")
        check_output_directory(Path(args.out).parent, option=f"--out {args.out!r}: folder")
    path = export_results(args.directory, format=args.format, out=args.out)
    print(f"dmoe export: {path}")
    return 0

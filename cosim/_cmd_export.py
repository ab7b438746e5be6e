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
    from dmoe.cosim.export import export_results

    path = export_results(args.directory, format=args.format, out=args.out)
    print(f"dmoe export: {path}")
    return 0

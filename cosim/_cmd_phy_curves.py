"""``dmoe phy-curves``: BER / BLER / throughput vs SNR per MCS and channel model (CSV + PNG)."""

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("--out", default="phy_curves", help="output folder (default: phy_curves)")
    parser.add_argument("--snr-db", nargs=3, type=float, default=(-4.0, 18.0, 2.0),
                        metavar=("START", "STOP", "STEP"),
                        help="SNR sweep in dB, stop included (default: -4 18 2)")
    parser.add_argument("--mcs", nargs="*", type=int, default=[4, 9, 15, 20],
                        help="MCS indices of the PDSCH table (default: 4 9 15 20)")
    parser.add_argument("--modulations", nargs="*", type=int, default=[],
                        help="bits per symbol of uncoded QAM curves, e.g. 2 4 6 (default: none)")
    parser.add_argument("--models", nargs="+", default=["awgn", "rayleigh"],
                        help="channel models: awgn rayleigh tdl cdl umi uma rma "
                             "(default: awgn rayleigh)")
    parser.add_argument("--fidelity", choices=("link", "abstraction"), default="link",
                        help="bit-true chain or PHY abstraction (default: link)")
    parser.add_argument("--num-blocks", type=int, default=50,
                        help="transport blocks per SNR point (default: 50)")
    parser.add_argument("--payload-bits", type=int, default=1024,
                        help="payload bits per transport block (default: 1024)")
    parser.add_argument("--num-subcarriers", type=int, default=12,
                        help="subcarriers per block (default: 12)")
    parser.add_argument("--mcs-table", type=int, default=1, help="PDSCH MCS table (default: 1)")
    parser.add_argument("--profile", default="A", help="TDL/CDL profile (default: A)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--name", default="link_curves", help="file stem (default: link_curves)")


def run(args):
    import numpy as np
    from dmoe.cosim.store import check_output_directory
    from dmoe.phy.curves import link_curves, write_curves

    check_output_directory(args.out)
    start, stop, step = args.snr_db
    if not step > 0 or stop < start:
        raise ValueError("--snr-db must be START STOP STEP with STEP > 0 and STOP >= START")
    snr_db = np.arange(start, stop + step / 2, step)
    table = link_curves(snr_db, mcs=args.mcs, modulations=args.modulations, models=args.models,
                        fidelity=args.fidelity, num_blocks=args.num_blocks,
                        payload_bits=args.payload_bits, num_subcarriers=args.num_subcarriers,
                        mcs_table=args.mcs_table, profile=args.profile, seed=args.seed)
    csv_path, png_path = write_curves(table, args.out, name=args.name)
    print(f"dmoe phy-curves: {len(table)} points -> {csv_path}, {png_path}")
    return 0

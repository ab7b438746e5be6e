"""Link curves: uncoded QAM BER against the exact Gray-QAM closed form; files and CLI."""

import argparse

import numpy as np
import pytest
from scipy.special import erfc

from dmoe.phy.curves import link_curves, write_curves


def _q(x):
    return 0.5 * erfc(x / np.sqrt(2.0))


def gray_qam_ber(snr, bits_per_symbol):
    """Exact BER of Gray square QAM (unit Es) on AWGN, Es/N0 = snr, by summing decision regions.

    Square QAM = two independent Gray-labelled sqrt(M)-PAMs; each bit error probability is the
    probability of landing in a decision region whose label differs in that bit.
    """
    levels = 2 ** (bits_per_symbol // 2)
    bits = bits_per_symbol // 2
    spacing = np.sqrt(3.0 / (2.0 * (levels ** 2 - 1)))            # half the minimum distance
    amplitude = spacing * (2 * np.arange(levels) - (levels - 1))
    sigma = np.sqrt(1.0 / (2.0 * snr))
    edges = np.concatenate([[-np.inf], (amplitude[:-1] + amplitude[1:]) / 2, [np.inf]])
    label = np.arange(levels) ^ (np.arange(levels) >> 1)
    errors = 0.0
    for sent in range(levels):
        # P(received in region j | level sent)
        p = _q((edges[:-1] - amplitude[sent]) / sigma) - _q((edges[1:] - amplitude[sent]) / sigma)
        for bit in range(bits):
            differ = ((label >> bit) & 1) != ((label[sent] >> bit) & 1)
            errors += p[differ].sum()
    return errors / (levels * bits)


def test_reference_formula_is_exact_for_qpsk():
    snr = 10.0 ** (np.array([0.0, 6.0, 10.0]) / 10.0)
    np.testing.assert_allclose([gray_qam_ber(s, 2) for s in snr], _q(np.sqrt(snr)), rtol=1e-12)


def test_uncoded_qam_ber_matches_closed_form_on_awgn():
    points = {2: [0.0, 4.0, 8.0], 4: [6.0, 10.0, 13.0], 6: [12.0, 16.0, 19.0]}
    snr_db = sorted({s for v in points.values() for s in v})
    table = link_curves(snr_db, mcs=(), modulations=(2, 4, 6), models=("awgn",),
                        num_blocks=40, num_subcarriers=12, seed=3)
    for bits_per_symbol, snrs in points.items():
        for snr in snrs:
            row = table[(table["bits_per_symbol"] == bits_per_symbol) & (table["snr_db"] == snr)]
            assert len(row) == 1
            row = row.iloc[0]
            reference = gray_qam_ber(10.0 ** (snr / 10.0), bits_per_symbol)
            # 4.5 sigma of the binomial count (errors are nearly independent per bit).
            sigma = np.sqrt(reference * (1 - reference) / row["bits"])
            assert abs(row["ber"] - reference) < 4.5 * sigma + 1e-12, (
                bits_per_symbol, snr, row["ber"], reference)


def test_coded_curves_fall_with_snr_and_write_files(tmp_path):
    table = link_curves([-2.0, 1.5, 12.0], mcs=(5,), models=("awgn", "rayleigh"),
                        fidelity="abstraction", num_blocks=200, payload_bits=800,
                        num_subcarriers=16, seed=0)
    assert set(table["model"]) == {"awgn", "rayleigh"}
    for _, curve in table.groupby("model"):
        bler = curve.sort_values("snr_db")["bler"].to_numpy()
        assert bler[0] > 0.5 and bler[-1] < 0.05
        assert np.all(curve["throughput_bps"] >= 0)
    # Fading costs SNR: at 1.5 dB Rayleigh fails more often than AWGN.
    at4 = table[table["snr_db"] == 1.5].set_index("model")["bler"]
    assert at4["rayleigh"] > at4["awgn"]
    csv_path, png_path = write_curves(table, tmp_path)
    assert csv_path.stat().st_size > 0 and png_path.read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_table():
    kwargs = dict(mcs=(10,), modulations=(4,), models=("rayleigh",), fidelity="abstraction",
                  num_blocks=30, seed=4)
    first = link_curves([3.0, 9.0], **kwargs)
    again = link_curves([3.0, 9.0], **kwargs)
    assert first.equals(again)


def test_cli_writes_csv_and_png(tmp_path):
    from dmoe.cosim import _cmd_phy_curves
    parser = argparse.ArgumentParser()
    _cmd_phy_curves.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--snr-db", "0", "10", "5", "--mcs", "5",
                              "--models", "awgn", "--fidelity", "abstraction",
                              "--num-blocks", "10"])
    assert _cmd_phy_curves.run(args) == 0
    assert (tmp_path / "link_curves.csv").exists() and (tmp_path / "link_curves.png").exists()


@pytest.mark.parametrize("bad", [dict(models=("ofdm",)), dict(modulations=(3,)),
                                 dict(num_blocks=0)])
def test_invalid_arguments_raise(bad):
    kwargs = dict(mcs=(5,), models=("awgn",), fidelity="abstraction", num_blocks=5)
    kwargs.update(bad)
    with pytest.raises(ValueError, match=list(bad)[0]):
        link_curves([0.0], **kwargs)

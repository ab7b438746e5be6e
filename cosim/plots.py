"""The standard figures of a run directory (PNG and PDF, matplotlib's Agg backend).

Each figure needs certain fields to have been swept; a figure whose fields were not swept is
skipped with a note, never drawn from too little data. Fields swept besides the ones a figure
uses become panels (up to :data:`MAX_PANELS`) or are averaged over, and the figure says which.

=========================  ==========================================  =====================
figure                     shows                                       needs
=========================  ==========================================  =====================
``tradeoff``               accuracy against energy per token, one      ``energy_per_token_j``
                           curve per scheme across rho                 and ``accuracy``
``energy_vs_subcarriers``  energy per token against N                  ``channel.num_subcarriers``
``energy_saving_vs_rho``   1 - E(scheme) / E(top_k) against rho        ``importance`` and ``top_k``
``accuracy_vs_snr``        accuracy against mean SNR                   a power, noise or
                                                                       distance field
``channel_sensitivity``    accuracy and energy per channel model       ``channel.model`` or
                                                                       ``channel.profile``
``layerwise_vs_homogeneous``  accuracy against energy per token of      ``des`` or ``jesa``
                           ``des`` / ``jesa`` and their layer-wise     and a ``_layerwise``
                           twins across rho (95 % intervals where the  twin
                           rows have ``accuracy_ci_low/high``)
=========================  ==========================================  =====================

Accuracies are drawn with their 95 % intervals (``accuracy_ci_low`` / ``accuracy_ci_high``) as
error bars where the table has them.
"""

import itertools
import json
from pathlib import Path

import numpy as np

from .config import SCHEMES
from .store import read_results

__all__ = ["plot_results", "FIGURES", "MAX_PANELS"]

FIGURES = ("tradeoff", "energy_vs_subcarriers", "energy_saving_vs_rho", "accuracy_vs_snr",
           "channel_sensitivity", "layerwise_vs_homogeneous")

_LAYERWISE_PAIRS = (("des", "des_layerwise"), ("jesa", "jesa_layerwise"))
MAX_PANELS = 6

_SNR_FIELDS = ("channel.tx_power_dbm", "channel.noise_figure_db", "channel.noise_psd_dbm_hz",
               "channel.min_distance_m", "channel.max_distance_m", "channel.distances_m",
               "channel.pathloss")


def _swept(table, axes):
    """Swept fields that really vary in the table (manifest axes, else columns that vary)."""
    return [name for name in axes if name in table.columns and table[name].nunique() > 1]


def _panels(table, swept, used):
    """Split the table by the swept fields a figure does not use: [(title, sub-table)]."""
    others = [name for name in swept if name not in used]
    combos = list(table.groupby(others, sort=False)) if others else [((), table)]
    if len(combos) > MAX_PANELS:
        return [("mean over " + ", ".join(n.split(".")[-1] for n in others), table)], others
    panels = []
    for values, sub in combos:
        values = values if isinstance(values, tuple) else (values,)
        # An unset setting is stored as "" (config_columns); the title says "none".
        panels.append((", ".join(f"{n.split('.')[-1]}={'none' if v == '' else v}"
                                 for n, v in zip(others, values)), sub))
    return panels, []


def _figure(num_panels, rows=1):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = int(np.ceil(num_panels / rows))
    # + room on the right for the legend (outside the panels)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 1.6, 3.6 * rows), squeeze=False)
    return fig, axes.ravel()


def _save(fig, directory, name, formats):
    import matplotlib.pyplot as plt
    paths = []
    fig.tight_layout()
    for fmt in formats:
        path = Path(directory) / f"{name}.{fmt}"
        fig.savefig(path, dpi=130)
        paths.append(path)
    plt.close(fig)
    return paths


_STYLES = [("o", "-"), ("s", "--"), ("^", "-."), ("v", ":"), ("D", "-"), ("x", "--"),
           ("P", "-."), ("*", ":"), ("h", "-"), ("<", "--"), (">", "-."), ("d", ":"),
           ("8", "-")]


def _style(scheme, schemes):
    """Marker, line style and colour of a scheme (distinct, so overlapping curves stay visible).

    The style is fixed by the scheme's place in :data:`dmoe.cosim.config.SCHEMES`, so a scheme
    looks the same in every figure and every study; schemes outside it follow in ``schemes``
    order.
    """
    from matplotlib import colormaps

    known = list(SCHEMES)
    index = known.index(scheme) if scheme in known else len(known) + schemes.index(scheme)
    marker, line = _STYLES[index % len(_STYLES)]
    # tab20's dark shades for the first ten schemes, its light shades for the next ten.
    color = colormaps["tab20"]((2 * index + (index // 10) % 2) % 20)
    return {"marker": marker, "linestyle": line, "markersize": 5, "fillstyle": "none",
            "color": color, "label": scheme}


def _legend(axes, used):
    """One legend, outside the right edge of the last panel used (never over the data)."""
    for ax in axes[used:]:
        ax.set_visible(False)
    axes[used - 1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                          borderaxespad=0.0)


def _plain_log_ticks(axis):
    """Log axis labelled at 1, 2, 5 x 10^n in plain numbers (default minor labels overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _mean_over(sub, keys, values):
    return sub.groupby(keys, sort=True)[values].mean().reset_index()


#: The 95 % interval columns of ``accuracy`` (``docs/cosim.md``, "95 % intervals").
_CI = ("accuracy_ci_low", "accuracy_ci_high")


def _with_ci(table, values):
    """``values`` plus the accuracy interval columns when the table has them."""
    if "accuracy" in values and set(_CI) <= set(table.columns):
        return values + [name for name in _CI if name not in values]
    return values


def _draw(ax, x, rows, y, scale, style):
    """A scheme's curve; with error bars where ``y`` is the accuracy and its interval is known.

    Rows averaged over other swept fields get the mean of their bounds: wider than the
    interval of the mean accuracy, so the bars never overstate how sure a point is.
    """
    if y == "accuracy" and set(_CI) <= set(rows.columns):
        below = (rows["accuracy"] - rows["accuracy_ci_low"]).clip(lower=0) * scale
        above = (rows["accuracy_ci_high"] - rows["accuracy"]).clip(lower=0) * scale
        ax.errorbar(x, rows[y] * scale, yerr=[below, above], capsize=2, elinewidth=0.8, **style)
    else:
        ax.plot(x, rows[y] * scale, **style)


def _tradeoff(table, swept, directory, formats):
    panels, averaged = _panels(table, swept, {"importance"})
    schemes = list(dict.fromkeys(table["scheme"]))
    fig, axes = _figure(len(panels))
    for ax, (title, sub) in zip(axes, panels):
        for scheme, rows in sub.groupby("scheme", sort=False):
            rows = _mean_over(rows, ["importance"],
                              _with_ci(rows, ["energy_per_token_j", "accuracy"]))
            _draw(ax, rows["energy_per_token_j"] * 1e3, rows, "accuracy", 100,
                  _style(scheme, schemes))
        _accuracy_energy_axes(ax, title or "accuracy-energy trade-off across rho")
    _legend(axes, len(panels))
    return _save(fig, directory, "tradeoff", formats), averaged


def _accuracy_energy_axes(ax, title):
    """Labels, log energy axis, title and grid of an accuracy-against-energy panel."""
    ax.set_xlabel("energy per token (mJ)")
    ax.set_ylabel("accuracy (%)")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def _by_x(table, swept, directory, formats, x, y, name, xlabel, ylabel, scale_y=1.0, logy=False):
    panels, averaged = _panels(table, swept, {x})
    schemes = list(dict.fromkeys(table["scheme"]))
    fig, axes = _figure(len(panels))
    for ax, (title, sub) in zip(axes, panels):
        for scheme, rows in sub.groupby("scheme", sort=False):
            rows = _mean_over(rows, [x], _with_ci(rows, [y]))
            _draw(ax, rows[x], rows, y, scale_y, _style(scheme, schemes))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
            _plain_log_ticks(ax.yaxis)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    _legend(axes, len(panels))
    return _save(fig, directory, name, formats), averaged


def _energy_saving(table, swept, directory, formats):
    keys = [name for name in swept if name in table.columns]
    reference = table[table["scheme"] == "top_k"][keys + ["energy_per_token_j"]]
    merged = table[table["scheme"] != "top_k"].merge(
        reference.rename(columns={"energy_per_token_j": "reference_j"}), on=keys, how="inner")
    merged = merged.assign(saving=1.0 - merged["energy_per_token_j"] / merged["reference_j"])
    return _by_x(merged, swept, directory, formats, "importance", "saving",
                 "energy_saving_vs_rho", "importance rho",
                 "energy saving vs top_k (%)", scale_y=100)


def _channel_label(table):
    labels = table["channel.model"].astype(str)
    if "channel.profile" in table.columns:
        with_profile = table["channel.model"].isin(["tdl", "cdl"])
        labels = labels.where(~with_profile, labels.str.upper() + "-" + table["channel.profile"])
    return labels.str.replace("rayleigh", "Rayleigh").str.replace(
        r"^(umi|uma|rma)$", lambda m: {"umi": "UMi", "uma": "UMa", "rma": "RMa"}[m.group(0)],
        regex=True)


def _channel_sensitivity(table, swept, directory, formats):
    table = table.assign(channel=_channel_label(table))
    panels, averaged = _panels(table, swept, {"channel.model", "channel.profile"})
    fig, axes = _figure(2 * len(panels), rows=len(panels))
    for index, (title, sub) in enumerate(panels):
        channels = list(dict.fromkeys(sub["channel"]))
        schemes = list(dict.fromkeys(sub["scheme"]))
        width = 0.8 / max(len(schemes), 1)
        for metric, ax, label, scale in (
                ("accuracy", axes[2 * index], "accuracy (%)", 100),
                ("energy_per_token_j", axes[2 * index + 1], "energy per token (mJ)", 1e3)):
            columns = _with_ci(sub, [metric])
            means = sub.groupby(["channel", "scheme"])[columns].mean()
            for offset, scheme in enumerate(schemes):
                picked = means.reindex([(channel, scheme) for channel in channels])
                heights = picked[metric].to_numpy() * scale
                errors = None
                if len(columns) > 1:  # accuracy with its 95 % interval
                    errors = np.clip([heights - picked[_CI[0]].to_numpy() * scale,
                                      picked[_CI[1]].to_numpy() * scale - heights], 0, None)
                ax.bar(np.arange(len(channels)) + offset * width, heights, width, label=scheme,
                       yerr=errors, capsize=1.5, error_kw={"elinewidth": 0.6})
            ax.set_xticks(np.arange(len(channels)) + 0.4 - width / 2, channels, rotation=30,
                          fontsize=8)
            ax.set_ylabel(label)
            ax.set_title(title or "channel-model sensitivity", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
            if metric == "energy_per_token_j":
                ax.set_yscale("log")
                _plain_log_ticks(ax.yaxis)
    _legend(axes, 2 * len(panels))
    return _save(fig, directory, "channel_sensitivity", formats), averaged


def _has_layerwise_pair(table):
    schemes = set(table["scheme"])
    return any(a in schemes and b in schemes for a, b in _LAYERWISE_PAIRS)


def _layerwise_vs_homogeneous(table, swept, directory, formats):
    """Homogeneous rho against layer-wise rho_l at the same point (the same mean requirement
    when ``layer_importance = "auto"``): accuracy against energy, one curve per scheme."""
    names = [name for pair in _LAYERWISE_PAIRS for name in pair]
    table = table[table["scheme"].isin(names)]
    panels, averaged = _panels(table, swept, {"importance"})
    schemes = list(dict.fromkeys(table["scheme"]))
    interval = {"accuracy_ci_low", "accuracy_ci_high"} <= set(table.columns)
    values = ["energy_per_token_j", "accuracy"] + (["accuracy_ci_low", "accuracy_ci_high"]
                                                   if interval else [])
    fig, axes = _figure(len(panels))
    for ax, (title, sub) in zip(axes, panels):
        for scheme, rows in sub.groupby("scheme", sort=False):
            rows = _mean_over(rows, ["importance"], values)
            style = _style(scheme, schemes)
            x, y = rows["energy_per_token_j"] * 1e3, rows["accuracy"] * 100
            if interval:
                error = np.vstack([y - rows["accuracy_ci_low"] * 100,
                                   rows["accuracy_ci_high"] * 100 - y])
                ax.errorbar(x, y, yerr=error, capsize=2, elinewidth=0.8, **style)
            else:
                ax.plot(x, y, **style)
            for rho, xi, yi in zip(rows["importance"], x, y):
                if scheme in ("des", "des_layerwise"):
                    ax.annotate(f"{rho:g}", (xi, yi), fontsize=6, alpha=0.7,
                                textcoords="offset points", xytext=(3, -8))
        _accuracy_energy_axes(ax, title or "layer-wise against homogeneous rho")
    _legend(axes, len(panels))
    return _save(fig, directory, "layerwise_vs_homogeneous", formats), averaged


def plot_results(directory, formats=("png", "pdf"), out=None, log=print):
    """Draw every standard figure the run's data supports.

    Parameters
    ----------
    directory : str or path
        A run directory of ``dmoe run`` (reads ``results.parquet`` or the finished points).
    formats : tuple of str
        File formats, e.g. ``("png", "pdf")``.
    out : str, path or None
        Figure directory (default ``DIR/figures``).
    log : callable
        Receives one line per figure drawn or skipped.

    Output
    ------
    written : dict
        ``{figure name: [paths]}`` of the figures drawn.

    Example
    -------
    >>> plot_results("results/default")   # doctest: +SKIP
    {'tradeoff': [...tradeoff.png, ...tradeoff.pdf], ...}
    """

    table, _ = read_results(directory)
    if table.empty:
        raise ValueError(f"{str(directory)!r} holds no finished points to plot")
    manifest = json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))
    swept = _swept(table, manifest.get("axes", {}))
    out = Path(out) if out is not None else Path(directory) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written = {}

    def attempt(name, needs_ok, reason, draw):
        if not needs_ok:
            log(f"skipped {name}: {reason}")
            return
        paths, averaged = draw()
        written[name] = paths
        note = f" (averaged over {', '.join(averaged)})" if averaged else ""
        log(f"wrote {paths[0].with_suffix('')}.{{{','.join(formats)}}}{note}")

    attempt("tradeoff", {"accuracy", "energy_per_token_j"} <= set(table.columns),
            "the table has no accuracy / energy columns",
            lambda: _tradeoff(table, swept, out, formats))
    attempt("energy_vs_subcarriers", "channel.num_subcarriers" in swept,
            "channel.num_subcarriers was not swept",
            lambda: _by_x(table, swept, out, formats, "channel.num_subcarriers",
                          "energy_per_token_j", "energy_vs_subcarriers",
                          "subcarriers N", "energy per token (mJ)", 1e3, logy=True))
    has_reference = "top_k" in set(table["scheme"]) and table["scheme"].nunique() > 1
    attempt("energy_saving_vs_rho", "importance" in swept and has_reference,
            "needs importance swept and the top_k scheme among others",
            lambda: _energy_saving(table, swept, out, formats))
    snr_fields = [name for name in _SNR_FIELDS if name in swept]
    attempt("accuracy_vs_snr", bool(snr_fields) and "mean_snr_db" in table.columns,
            "no transmit power, noise or distance field was swept",
            lambda: _by_x(table, [s for s in swept if s not in snr_fields], out, formats,
                          "mean_snr_db", "accuracy", "accuracy_vs_snr",
                          "mean SNR (dB)", "accuracy (%)", 100))
    attempt("channel_sensitivity",
            any(name in swept for name in ("channel.model", "channel.profile")),
            "channel.model / channel.profile was not swept",
            lambda: _channel_sensitivity(table, swept, out, formats))
    attempt("layerwise_vs_homogeneous", _has_layerwise_pair(table),
            "needs des or jesa together with its _layerwise twin",
            lambda: _layerwise_vs_homogeneous(table, swept, out, formats))
    return written


def _synthetic_table(seed=0):
    """A fake results table with every figure's fields swept (for tests and previews)."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    rows = []
    for rho, n, power, model in itertools.product(
            (0.5, 0.8, 1.0), (16, 64), (0.0, 23.0), ("rayleigh", "tdl", "umi")):
        for scheme in ("des", "jesa", "top_k", "des_layerwise"):
            energy = 1e-3 * (rho + 0.2) * (64 / n) * (1.5 if scheme == "top_k" else 1.0)
            rows.append({"scheme": scheme, "importance": rho, "channel.num_subcarriers": n,
                         "channel.tx_power_dbm": power, "channel.model": model,
                         "channel.profile": "A", "mean_snr_db": power - 5 + rng.normal(),
                         "accuracy": min(1.0, 0.7 + 0.25 * rho + 0.002 * power),
                         "energy_per_token_j": energy})
    table = pd.DataFrame(rows)
    from .intervals import wilson_interval
    low, high = wilson_interval(np.round(table["accuracy"] * 256), 256)
    return table.assign(accuracy_ci_low=low, accuracy_ci_high=high)

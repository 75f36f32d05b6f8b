"""Figures of a results file (``neuroenergy plot``): trends against network size with the
mean and 95% interval over seeds, energy-accuracy curves, joules per technology and
write-count maps. One colour per rule throughout (:func:`neuroenergy.plots.rule_color`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import analysis
from .plots import _pyplot, rule_color
from .report import hardware_columns

MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", ":", "-.")
DPI = 130
N_MAP_UNITS = 4


def _styles(series_labels):
    """A (colour, marker, linestyle) per series: colour by rule, the rest by variant."""
    seen, out = {}, {}
    for label in series_labels:
        rule = label.split(" ")[0]
        i = seen.get(rule, 0)
        seen[rule] = i + 1
        out[label] = (rule_color(rule), MARKERS[i % len(MARKERS)],
                      LINESTYLES[i % len(LINESTYLES)])
    return out


def _log_y(ax, values):
    """Every trend figure shows a positive quantity: a log axis keeps a factor a factor, and
    a 95% interval that reaches below zero (few seeds) runs to the bottom of the axis."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0])
    ax.set_yscale("log", nonpositive="clip")
    if len(v):
        ax.set_ylim(v.min() / 2, v.max() * 2)
        if v.max() / v.min() < 30:  # under two decades: label ticks as plain numbers
            from matplotlib.ticker import FuncFormatter
            plain = FuncFormatter(lambda x, _: f"{x:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)


def _size_axis(ax, sizes):
    """Log axis of network sizes, ticked at the sizes themselves (plain numbers)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, StrMethodFormatter
    ax.set_xscale("log")
    sizes = sorted(set(sizes))
    if sizes:
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(min(sizes) / 1.35, max(sizes) * 1.35)
    ax.set_xlabel("hidden units")
    ax.grid(True, which="major", alpha=0.3)


def _trend(ax, by_series, styles, name, converged_only=True, transform=None):
    """Per series against hidden units: the mean (line), its 95% interval over seeds (error
    bars) and the seeds (dots); series are dodged sideways so that bars do not overlap."""
    values, sizes = [], []
    n = max(len(by_series), 1)
    for i, (label, by_hidden) in enumerate(by_series.items()):
        color, marker, ls = styles[label]
        dodge = 10 ** ((i - (n - 1) / 2) * 0.018)
        stats = (transform(label) if transform else analysis.curve(by_hidden, name,
                                                                   converged_only))
        # several hidden layers have no place on a size axis: they are in `show`
        xs = [h for h, s in stats.items() if s[3] > 0 and not isinstance(h, tuple)]
        sizes += [h for h in by_hidden if not isinstance(h, tuple)]
        if not xs:
            continue
        mean = np.array([stats[h][0] for h in xs])
        lo = np.array([stats[h][1] for h in xs])
        hi = np.array([stats[h][2] for h in xs])
        x = np.array(xs, dtype=float) * dodge
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.plot(x, mean, ls=ls, marker=marker, color=color, label=label, lw=1.6, ms=5,
                zorder=3)
        if ok.any():
            ax.errorbar(x[ok], mean[ok], yerr=[mean[ok] - lo[ok], hi[ok] - mean[ok]], fmt="none",
                        ecolor=color, elinewidth=1.1, capsize=3, alpha=0.8, zorder=2)
        values += list(mean)  # the axis fits means and seeds; wide intervals run off it
        if transform is None:
            for h, runs in by_hidden.items():
                if isinstance(h, tuple):
                    continue
                seeds = [analysis.metric(r, name) for r in runs
                         if r["status"] == "converged" or not converged_only]
                seeds = [v for v in seeds if v is not None]
                values += seeds
                ax.plot([h * dodge] * len(seeds), seeds, ".", color=color, ms=3, alpha=0.45,
                        zorder=1)
    _size_axis(ax, sizes)
    return values


def _finish(fig, path, title=None):
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def _legend(ax, **kw):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, **kw)


def fig_energy(by_series, styles, out):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    for ax, name, ylabel in ((axes[0], "M0", "synaptic updates M0 (count)"),
                             (axes[1], "M1", "summed weight change M1 (weight units)")):
        values = _trend(ax, by_series, styles, name)
        _log_y(ax, values)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{name} to reach the target (converged runs)")
    _legend(axes[0], loc="best")
    return _finish(fig, out / "energy_vs_hidden.png",
                   "Energy of learning against network size (mean, 95% interval over seeds)")


def fig_inefficiency(by_series, styles, out):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.4), layout="constrained")
    values = _trend(ax, by_series, styles, "inefficiency_M1")
    _log_y(ax, values)
    ax.set_ylabel("inefficiency M1 / M1_min (ratio)")
    ax.set_title("Distance from the minimal energy")
    _legend(ax, loc="best")
    return _finish(fig, out / "inefficiency_vs_hidden.png")


def fig_epochs(by_series, styles, out, target):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.4), layout="constrained")
    values = _trend(ax, by_series, styles, "epochs")
    for label, by_hidden in by_series.items():  # runs that never reached the target
        color = styles[label][0]
        for h, runs in by_hidden.items():
            missed = [r["epochs"] for r in runs if r["status"] != "converged"]
            if missed and not isinstance(h, tuple):
                ax.plot([h] * len(missed), missed, "x", color=color, ms=7, mew=1.5)
                values += missed
    _log_y(ax, values)
    ax.set_ylabel(f"epochs to {target:.0%} test accuracy")
    ax.set_title("Learning time (x: did not reach the target)")
    _legend(ax, loc="best")
    return _finish(fig, out / "epochs_vs_hidden.png")


def fig_savings(summaries, by_series, styles, out):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    drawn = False
    for ax, measure in zip(axes, ("M0", "M1")):
        ratios = analysis.savings(summaries, measure)
        series = {k: runs for k, runs in by_series.items() if k in ratios}
        values = _trend(ax, series, styles, measure, transform=lambda k: ratios[k])
        drawn = drawn or bool(values)
        ax.axhline(1.0, color=rule_color(analysis.BASELINE_RULE), lw=1, ls="--",
                   label="backprop (1)")
        _log_y(ax, values + [1.0])
        ax.set_ylabel(f"savings factor: {measure} backprop / {measure} rule")
        ax.set_title(f"Savings in {measure} against backprop (paired by seed)")
    _legend(axes[1], loc="best")
    if not drawn:
        _pyplot().close(fig)
        return None
    return _finish(fig, out / "savings_vs_hidden.png")


def fig_energy_accuracy(path, summaries, styles, out, target):
    from .store import load_run
    plt = _pyplot()
    labels = analysis.SeriesLabels(analysis.finished(summaries))
    runs = [s for s in summaries if s.get("status") in ("converged", "not_converged")]
    sizes = sorted({analysis.hidden_key(s) for s in runs}, key=analysis._size_order)
    if not sizes:
        return None
    ncols = min(len(sizes), 3)
    nrows = math.ceil(len(sizes) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.6 * nrows + 0.6),
                             layout="constrained", squeeze=False, sharey=True)
    from matplotlib.ticker import NullFormatter
    handles, lowest = {}, 100.0
    for ax, hidden in zip(axes.flat, sizes):
        for s in runs:
            if analysis.hidden_key(s) != hidden:
                continue
            c = load_run(path, s["run_id"], parts=("curves",)).get("curves", {})
            if "M1_input" not in c:
                continue
            label = labels(s)
            color, _, ls = styles.get(label, (rule_color(s["rule"]), "o", "-"))
            m1 = np.asarray(c["M1_input"]) + np.asarray(c["M1_output"])
            accuracy = 100 * np.asarray(c["accuracy"])
            (line,) = ax.plot(m1, accuracy, color=color, ls=ls, lw=1.2, alpha=0.8)
            handles.setdefault(label, line)
            if np.isfinite(accuracy).any():
                lowest = min(lowest, float(np.nanmin(accuracy)))
        ax.axhline(100 * target, color="0.5", lw=0.8, ls=":")
        ax.set(xscale="log", xlabel="cumulative M1 (weight units)",
               title=f"{analysis.size_text(hidden)} hidden units")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, alpha=0.3)
    # from just below the first evaluation up to 100%: the approach to the target matters
    axes[0, 0].set_ylim(max(0.0, min(lowest, 100 * target - 5) - 2), 100)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    for ax in list(axes.flat)[len(sizes):]:
        ax.set_visible(False)
    order = sorted(handles, key=analysis.rule_order)
    fig.legend([handles[k] for k in order], order, loc="outside lower center",
               ncols=min(len(order), 4), fontsize=8)
    return _finish(fig, out / "energy_accuracy.png",
                   "Accuracy against energy spent during learning (every seed)")


def fig_hardware(summaries, by_series, styles, out):
    presets = hardware_columns(summaries)
    if not presets:
        return None
    plt = _pyplot()
    ncols = min(len(presets), 3)
    nrows = math.ceil(len(presets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.8 * nrows),
                             layout="constrained", squeeze=False)
    for ax, preset in zip(axes.flat, presets):
        values = _trend(ax, by_series, styles, f"energy_j:{preset}")
        _log_y(ax, values)
        ax.set(ylabel="write energy (J)", title=preset)
    for ax in list(axes.flat)[len(presets):]:
        ax.set_visible(False)
    _legend(axes.flat[0], loc="best")
    return _finish(fig, out / "hardware_joules.png",
                   "Energy of the weight writes per memory technology (converged runs)")


def fig_write_maps(path, summaries, out, hidden=None):
    """Per rule (rows): the input layer's writes per pixel summed over hidden units, and the
    28x28 write-count maps of the most-written hidden units of one run."""
    from .store import load_run
    runs = [s for s in summaries if s.get("status") in ("converged", "not_converged")]
    sizes = sorted({analysis.hidden_key(s) for s in runs}, key=analysis._size_order)
    if not sizes:
        return None
    hidden = hidden if hidden in sizes else sizes[0]
    chosen, maps = {}, {}
    for s in sorted(runs, key=lambda s: (analysis.rule_order(s["rule"]), s["seed"])):
        if analysis.hidden_key(s) != hidden or s["rule"] in chosen:
            continue
        counts = (load_run(path, s["run_id"], parts=("write_counts",)).get("write_counts")
                  or {}).get("input")
        if counts is None or counts.shape[0] != 785:  # a damaged run, or not 28x28 images
            continue
        chosen[s["rule"]], maps[s["rule"]] = s, counts
    if not chosen:
        return None
    plt = _pyplot()
    ncols = N_MAP_UNITS + 1
    fig, axes = plt.subplots(len(chosen), ncols, figsize=(2.3 * ncols + 0.8,
                                                        2.3 * len(chosen) + 0.6),
                             layout="constrained", squeeze=False)
    for row, (rule, s) in zip(axes, chosen.items()):
        pixels = maps[rule][:784].astype(np.float64)  # row 784 is the bias input
        per_unit = pixels.sum(axis=0)
        top = np.argsort(per_unit)[::-1][:N_MAP_UNITS]
        images = [pixels.sum(axis=1)] + [pixels[:, u] for u in top]
        titles = ["all hidden units"] + [f"unit {u}" for u in top]
        vmax_units = max(float(pixels[:, top].max()), 1.0)
        for i, (ax, image, title) in enumerate(zip(row, images, titles)):
            vmax = max(float(image.max()), 1.0) if i == 0 else vmax_units
            im = ax.imshow(image.reshape(28, 28), cmap="magma", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=9)
            if image.min() == image.max():  # a flat image reads as broken without a word
                ax.text(0.5, 0.5, f"every pixel\n{image.max():,.0f}\nwrites", ha="center",
                        va="center", transform=ax.transAxes, fontsize=8, color="0.15")
            if i in (0, ncols - 1):
                fig.colorbar(im, ax=ax, shrink=0.8, label="writes" if i else "writes (sum)")
        row[0].set_ylabel(rule, fontsize=10, color=rule_color(rule), fontweight="bold")
    seeds = sorted({s["seed"] for s in chosen.values()})
    return _finish(fig, out / "write_maps.png",
                   f"Writes per input pixel at {analysis.size_text(hidden)} hidden units: summed "
                   f"over units, and the {N_MAP_UNITS} most written units (seed "
                   f"{', '.join(map(str, seeds))})")


def plot_results(path, out, hidden_for_maps=None) -> list:
    """Every figure that the runs in ``path`` support, as PNG files in ``out``; returns
    their paths."""
    from .store import read_runs
    summaries = read_runs(path)
    out = Path(out)
    by_series = analysis.series_by_rule(summaries)
    if not by_series:
        return []
    styles = _styles(by_series)
    targets = [s["config"]["target_accuracy"] for s in summaries if s.get("config")]
    target = max(set(targets), key=targets.count) if targets else 0.95
    paths = [fig_energy(by_series, styles, out), fig_inefficiency(by_series, styles, out),
             fig_epochs(by_series, styles, out, target),
             fig_savings(summaries, by_series, styles, out),
             fig_energy_accuracy(path, summaries, styles, out, target),
             fig_hardware(summaries, by_series, styles, out),
             fig_write_maps(path, summaries, out, hidden_for_maps)]
    return [p for p in paths if p is not None]

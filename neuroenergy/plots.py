"""Figures (matplotlib, Agg, constrained layout). One colour per rule throughout."""
from __future__ import annotations

from pathlib import Path

import numpy as np

RULE_COLORS = {"backprop": "#1b1b1b", "top-fraction": "#d95f02", "path": "#1b9e77",
               "combined": "#7570b3"}
FALLBACK_COLORS = ["#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4"]


def rule_color(rule: str) -> str:
    if rule not in RULE_COLORS:
        RULE_COLORS[rule] = FALLBACK_COLORS[len(RULE_COLORS) % len(FALLBACK_COLORS)]
    return RULE_COLORS[rule]


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_comparison(summaries, path) -> Path:
    """Four panels per rule (mean over seeds, seeds as dots): writes M0, change M1 next to
    its minimum, epochs to the target, and test accuracy against M1 during learning."""
    plt = _pyplot()
    rules = list(dict.fromkeys(s["rule"] for s in summaries))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), layout="constrained")
    x = np.arange(len(rules))

    def per_rule(getter):
        return [[getter(s) for s in summaries if s["rule"] == r] for r in rules]

    def bars(ax, values, label, color=None, offset=0.0, width=0.6, hatch=None):
        means = [np.mean(f) if len(f := [x for x in v if np.isfinite(x)]) else np.nan
                 for v in values]
        colors = color or [rule_color(r) for r in rules]
        ax.bar(x + offset, means, width=width, color=colors, alpha=0.85, label=label,
               hatch=hatch, edgecolor="white")
        for xi, v in zip(x, values):
            ax.plot(np.full(len(v), xi + offset), v, "o", color="0.3", ms=3)

    bars(axes[0, 0], per_rule(lambda s: s["energy"]["M0"]["total"]), "M0")
    axes[0, 0].set(yscale="log", ylabel="weight writes M0 (count)",
                   title="Number of synaptic updates")
    bars(axes[0, 1], per_rule(lambda s: s["energy"]["M1"]["total"]), "M1 (learning)",
         offset=-0.2, width=0.4)
    bars(axes[0, 1], per_rule(lambda s: s["energy"]["M1_min"]["total"]), "M1_min (direct)",
         color=["0.75"] * len(rules), offset=0.2, width=0.4)
    axes[0, 1].set(yscale="log", ylabel="summed |dw| M1 (weight units)",
                   title="Energy M1 and its minimum")
    lo, hi = axes[0, 1].get_ylim()
    axes[0, 1].set_ylim(lo, hi * 6)  # headroom so the legend never covers a bar
    axes[0, 1].legend(loc="upper right", fontsize=8, ncols=2)
    bars(axes[1, 0], per_rule(lambda s: s["epochs"] if s["status"] == "converged" else np.nan),
         "epochs")
    axes[1, 0].set(ylabel="epochs to target accuracy", title="Learning time")
    for ax in (axes[0, 0], axes[0, 1], axes[1, 0]):
        ax.set_xticks(x, rules, rotation=15)
    ax = axes[1, 1]
    for s in summaries:
        curves = s.get("curves")
        if curves is None:
            continue
        m1 = np.asarray(curves["M1_input"]) + np.asarray(curves["M1_output"])
        ax.plot(m1, 100 * np.asarray(curves["accuracy"]), color=rule_color(s["rule"]),
                lw=1.2, label=s["rule"])
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8, loc="lower right")
    ax.set(xscale="log", xlabel="cumulative M1 (weight units)", ylabel="test accuracy (%)",
           title="Accuracy against energy spent", ylim=(80, 100))
    hidden = sorted({s["hidden"] for s in summaries})
    fig.suptitle(f"Plasticity rules at {', '.join(map(str, hidden))} hidden units "
                 f"({len({s['seed'] for s in summaries})} seed(s))")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

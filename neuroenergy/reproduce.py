"""``neuroenergy reproduce``: the study's grid as a sweep, its figures, and a markdown report
with a table that states each claim and whether the data support it.

The grid: backprop, top-fraction, path and combined at 100, 300, 1,000, 3,000 and 10,000
hidden units, 3 seeds each, with the study's training recipe (the RunConfig defaults). Rule
parameters were chosen so that every rule reaches 95% within 5 epochs at every size
(measured on this machine, seed 0; see PARAMETER_NOTES). ``--quick`` runs the three smallest
sizes with 2 seeds.

References
----------
van Rossum & Pache, "Competitive plasticity to reduce the energetic costs of learning",
PLoS Comput Biol 20(10): e1012553 (2024). https://doi.org/10.1371/journal.pcbi.1012553
"""
from __future__ import annotations

import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import __version__

FULL_HIDDEN = (100, 300, 1000, 3000, 10000)
QUICK_HIDDEN = (100, 300, 1000)
FULL_SEEDS, QUICK_SEEDS = 3, 2
TOP_FRACTION_P = 0.01
#: path size per network size: k = 50 converges up to 1,000 units; at 3,000 it needs 3.7
#: epochs and at 10,000 it stays below 95% after 5 epochs, so the path grows there
PATH_K = {100: 50, 300: 50, 1000: 50, 3000: 100, 10000: 200}
COMBINED_P = 0.2
#: output learning rate per size (default: lr = 0.01). At 10,000 units the output layer's
#: step lr |h|^2 nears the squared-error stability limit; top-fraction diverged there
LR_OUT = {10000: 0.003}
REFERENCE = ("van Rossum, M. C. W., & Pache, A. (2024). Competitive plasticity to reduce the "
             "energetic costs of learning. *PLoS Computational Biology* 20(10): e1012553. "
             "https://doi.org/10.1371/journal.pcbi.1012553")
PARAMETER_NOTES = [
    "top-fraction: p = 0.01 of each layer's updates per sample (the study's headline "
    "setting; output layer p_out = min(78.4 p, 1) so both layers make about as many writes).",
    "path: k hidden units learn (in and out). k = 50 up to 1,000 hidden units. Measured at "
    "seed 0: k = 50 needs 3.7 epochs at 3,000 units and stays at 92.9% after 5 epochs at "
    "10,000; k = 100 at 3,000 reaches 95% in 0.9 epochs and k = 200 at 10,000 in 1.1 epochs.",
    "combined: the same path, and within it the top p = 0.2 of the plastic updates per layer. "
    "Measured at seed 0: k = 50, p = 0.2 stays below 95% after 5 epochs at 3,000 (94.1%) and "
    "10,000 units (93.3%); at 1,000 units p = 0.05 stays at 94.1% and p = 0.5 converges in 1.5 "
    "epochs with 24% less M1 than p = 0.2 (still more than top-fraction).",
    "output learning rate 0.003 at 10,000 hidden units for every rule (0.01 elsewhere): with "
    "lr_out = 0.01, top-fraction diverged within 60 samples there (backprop did not).",
]


def study_sweep_text(quick=False) -> str:
    """The study's grid as a sweep file (TOML)."""
    hidden = QUICK_HIDDEN if quick else FULL_HIDDEN
    seeds = QUICK_SEEDS if quick else FULL_SEEDS
    lines = ["# The grid of van Rossum & Pache (2024), written by `neuroenergy reproduce"
             f"{' --quick' if quick else ''}`.",
             "# Recipe: the RunConfig defaults (lr 0.01, init std 0.03, leaky ReLU, squared "
             "error, target 95%, at most 5 epochs).",
             f"seeds = {seeds}", "", "[sweep]", f'name = "vanRossum_Pache_2024'
             f'{"_quick" if quick else ""}"', "store_weights = false"]

    def table(rule, params, sizes):
        groups = {}
        for h in sizes:  # one table per distinct (parameters, lr_out)
            p = {k: (v[h] if isinstance(v, dict) else v) for k, v in params.items()}
            key = (tuple(sorted(p.items())), LR_OUT.get(h))
            groups.setdefault(key, []).append(h)
        for (p, lr_out), sizes_ in groups.items():
            lines.extend(["", "[[rule]]", f'name = "{rule}"'])
            lines.extend(f"{k} = {v}" for k, v in p)
            lines.append(f"hidden = {list(sizes_)}")
            if lr_out is not None:
                lines.append(f"lr_out = {lr_out}")

    table("backprop", {}, hidden)
    table("top-fraction", {"p": TOP_FRACTION_P}, hidden)
    table("path", {"k": PATH_K}, hidden)
    table("combined", {"k": PATH_K, "p": COMBINED_P}, hidden)
    return "\n".join(lines) + "\n"


def reproduce(out: Path, quick=False, resume=False, progress=True, executor="processes",
              workers=None, scheduler=None) -> Path:
    """Run the grid into ``out/results.h5``, draw ``out/figures/`` and write
    ``out/report.md``; returns the report's path."""
    import tomllib
    from .figures import plot_results
    from .sweep import parse_sweep, run_sweep
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = study_sweep_text(quick)
    (out / "sweep.toml").write_text(text)
    sweep = parse_sweep(tomllib.loads(text), str(out / "sweep.toml"))
    sweep.text = text
    results = out / "results.h5"
    start = time.monotonic()
    report = run_sweep(sweep, results, executor=executor, workers=workers,
                       scheduler=scheduler, resume=resume or results.exists(),
                       progress=progress)
    report["wall_s"] = time.monotonic() - start
    report["sessions"] = _log_session(out / "sessions.json", report)
    figures = plot_results(results, out / "figures")
    return write_report(results, out, figures, report, quick)


def _log_session(path: Path, report) -> list:
    """Every invocation's wall time and runs (a resumed reproduction spans several)."""
    import json
    sessions = json.loads(path.read_text()) if path.exists() else []
    sessions.append({"finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "wall_s": round(report["wall_s"], 1), "runs": report["run"],
                     "executor": report["executor"], "cores": os.cpu_count()})
    path.write_text(json.dumps(sessions, indent=1) + "\n")
    return sessions


def _timing_text(sweep_report, train_s) -> str:
    sessions = sweep_report.get("sessions") or [{"wall_s": sweep_report["wall_s"],
                                                 "runs": sweep_report["run"]}]
    trained = [s for s in sessions if s["runs"]]
    wall = sum(s["wall_s"] for s in trained)
    return (f"Wall time of the sweep {wall / 60:.1f} min ({sum(s['runs'] for s in trained)} "
            f"runs trained in {len(trained)} session(s), see `sessions.json`); summed "
            f"training time of the runs {train_s / 60:.1f} min; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores as the report was written.")


def _md_table(head, rows) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _ci(ci, spec):
    mean, lo, hi, n = ci
    if n == 0:
        return "-"
    text = format(mean, spec)
    return text + (f" ± {format((hi - lo) / 2, spec)}" if n > 1 and hi == hi else "")


FIGURE_CAPTIONS = {  # in the order the report shows them
    "energy_vs_hidden.png": "Number of synaptic updates M0 (left) and summed weight change M1 "
                            "(right) to reach 95%, against network size.",
    "savings_vs_hidden.png": "Savings factor of each rule against backprop (same size and "
                             "seed), in M0 and M1.",
    "inefficiency_vs_hidden.png": "Inefficiency M1 / M1_min: how far learning is from setting "
                                  "every weight once to its final value.",
    "epochs_vs_hidden.png": "Learning time: epochs to 95% test accuracy (x: runs that did not "
                            "get there within 5 epochs).",
    "energy_accuracy.png": "Test accuracy against cumulative M1 during learning, per size.",
    "hardware_joules.png": "Write energy per memory technology.",
    "write_maps.png": "Writes per input pixel: summed over hidden units, and for the most "
                      "written units (28 x 28 images).",
}


def write_report(results, out: Path, figures, sweep_report, quick) -> Path:
    """The markdown report next to the figures."""
    from . import analysis
    from .claims import evaluate
    from .store import read_runs
    summaries = read_runs(results)
    counts = analysis.status_counts(summaries)
    rows = analysis.summary_rows(summaries)
    claims = evaluate(summaries)
    train_s = sum(s.get("train_seconds") or 0 for s in summaries)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Reproduction: competitive plasticity to reduce the energetic costs of learning"
        f"{' (quick subset)' if quick else ''}", "",
        f"> {REFERENCE}", "",
        f"Produced by `neuroenergy reproduce{' --quick' if quick else ''}` (neuroenergy "
        f"{__version__}) on {now}: {platform.machine()} Linux, {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, executor {sweep_report['executor']}. "
        f"{len(summaries)} runs: " + ", ".join(f"{v} {k.replace('_', ' ')}"
                                               for k, v in counts.items()) + ". "
        + _timing_text(sweep_report, train_s), "",
        "## Claims", "",
        _md_table(["claim (paper)", "measured here", "criterion", "verdict"],
                  [[c["claim"], c["measured"], c["criterion"], f"**{c['verdict']}**"]
                   for c in claims]), "",
        "## Setup", "",
        "Training recipe (the `RunConfig` defaults): 784 inputs + bias -> N hidden (leaky "
        "ReLU, slope 0.1; hidden unit 0 clamped to 1 as the output bias) -> 10 linear outputs, "
        "squared error, per-sample SGD with learning rate 0.01, Gaussian initial weights (std "
        "0.03), inputs scaled and centred with tie-breaking noise (std 0.001), samples drawn "
        "with replacement; the 10,000-image test set is evaluated every 2,000 samples and a "
        "run stops at the first evaluation at or above 95%, or after 5 epochs (not "
        "converged). M0 counts weight writes, M1 sums |dw|; energies are to the target.", "",
        "Rule parameters (chosen so that every rule converges at every size, measured here):",
        "", *[f"- {note}" for note in PARAMETER_NOTES], "",
        "The grid as a sweep file: [`sweep.toml`](sweep.toml) (rerun it with `neuroenergy "
        "sweep sweep.toml --out results.h5`).", "",
        "## Results", "",
        "Mean ± 95% interval half-width over seeds (Student t), converged runs only; savings = "
        "backprop's M1 / the rule's M1 for the same size and seed.", "",
        _md_table(["rule", "hidden", "converged", "epochs", "M0", "M1", "M1/M1_min",
                   "savings M1", "test acc."],
                  [[r["series"], analysis.size_text(r["hidden"]), f"{r['converged']}/{r['runs']}",
                    _ci(r["epochs"], ".2f"), _ci(r["M0"], ".3g"), _ci(r["M1"], ".3g"),
                    _ci(r["inefficiency_M1"], ".1f"),
                    "1" if r["rule"] == "backprop" else _ci(r["savings_M1"], ".2f"),
                    _ci(tuple(100 * v if i < 3 else v for i, v in enumerate(
                        r["test_accuracy"])), ".2f")] for r in rows]), "",
        "## Figures", "",
    ]
    order = list(FIGURE_CAPTIONS)
    for fig in sorted(map(Path, figures), key=lambda f: (
            order.index(f.name) if f.name in order else len(order), f.name)):
        lines += [f"![{fig.stem}](figures/{fig.name})", "",
                  f"*{FIGURE_CAPTIONS.get(fig.name, fig.stem)}*", ""]
    problems = [s for s in summaries if s.get("status") != "converged"]
    if problems:
        lines += ["## Runs that did not converge", ""]
        lines += [f"- {s['run_id']}: {s['status']}"
                  + (f" at {100 * s['test_accuracy']:.2f}% after {s['epochs']:.2f} epochs"
                     if s.get("epochs") is not None and s.get("test_accuracy") == s.get(
                         "test_accuracy") else "")
                  + (f" - {s['error']}" if s.get("error") else "") for s in problems]
        lines.append("")
    path = Path(out) / "report.md"
    path.write_text("\n".join(lines))
    return path

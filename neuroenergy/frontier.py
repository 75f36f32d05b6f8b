"""``neuroenergy frontier RESULTS.h5``: energy against learning time, per network size.

Runs are grouped into *settings* (a rule with its parameters, over seeds). For each network
size the command prints

- the Pareto front: the settings (every seed converged) that no other setting beats in both
  mean learning time (epochs to the target) and mean energy (M1 by default, or any measure of
  ``analysis.metric``, e.g. ``energy_j:pcm``), with 95% Student-t intervals over seeds;
- each rule's best setting (lowest mean energy among its all-converged settings);
- the comparison with the study's combined rule at equal learning time: a setting with mean
  learning time T is compared with the cheapest combined setting whose mean learning time is
  at most T (1 + tolerance); it beats it if its mean energy is lower, *clearly* if the two
  95% intervals do not overlap;
- the winner: the lowest mean energy of all all-converged settings.

Settings with an unconverged seed never enter the front; they are counted below the tables.
"""
from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .analysis import mean_ci, metric, varying_fields

BASELINE = "combined"
IGNORED_PARAMS = ("selection",)


def _fmt_value(v):
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def rule_text(name: str, params: dict) -> str:
    """'combined(k=50, p=0.2)', 'lazy[0](combined(k=50, p=0.2))'."""
    params = dict(params or {})
    if name == "lazy":
        base = dict(params.get("base") or {"name": "backprop"})
        return f"lazy[{_fmt_value(params.get('margin', 0.0))}]({rule_text(base.pop('name'), base)})"
    shown = [f"{k}={_fmt_value(v)}" for k, v in params.items()
             if v is not None and k not in IGNORED_PARAMS]
    return name + (f"({', '.join(shown)})" if shown else "")


def family(summary: dict) -> str:
    """The rule a setting belongs to; lazy learning counts as its own rule per base rule."""
    if summary["rule"] == "lazy":
        base = (summary.get("rule_params") or {}).get("base") or {}
        return f"lazy+{base.get('name', 'backprop')}"
    return summary["rule"]


@dataclass
class Setting:
    """One rule setting at one network size, aggregated over its seeds."""

    label: str
    family: str
    hidden: object
    runs: list
    energy_name: str
    epochs: tuple = ()
    energy: tuple = ()
    inefficiency: tuple = ()
    joules: dict = field(default_factory=dict)
    max_writes: tuple = ()
    test_accuracy: tuple = ()

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def n_converged(self) -> int:
        return sum(r.get("status") == "converged" for r in self.runs)

    @property
    def all_converged(self) -> bool:
        return self.n > 0 and self.n_converged == self.n

    def to_dict(self) -> dict:
        return {"label": self.label, "family": self.family, "hidden": self.hidden,
                "seeds": self.n, "converged": self.n_converged, "epochs": self.epochs,
                "energy": self.energy, "energy_name": self.energy_name,
                "inefficiency_M1": self.inefficiency, "joules": self.joules,
                "test_accuracy": self.test_accuracy,
                "max_writes_per_synapse": self.max_writes}


def collect(summaries, energy="M1", wear=None) -> dict:
    """{hidden: [Setting]} from run summaries (``store.read_runs``). ``wear`` maps run ids to
    the largest per-synapse write count of the run (optional)."""
    good = [s for s in summaries if s.get("status") in ("converged", "not_converged",
                                                         "diverged")]
    varying = [k for k in varying_fields(good) if k not in ("hardware", "hardware_mode")]
    groups = defaultdict(list)
    for s in good:
        context = "".join(f" [{k}={(s.get('config') or {}).get(k)}]" for k in varying)
        label = rule_text(s["rule"], s.get("rule_params")) + context
        hidden = s["hidden"] if not isinstance(s["hidden"], list) else tuple(s["hidden"])
        groups[(hidden, label)].append(s)
    out = defaultdict(list)
    for (hidden, label), runs in sorted(groups.items(), key=lambda kv: (str(kv[0][0]),
                                                                         kv[0][1])):
        conv = [r for r in runs if r["status"] == "converged"]
        st = Setting(label, family(runs[0]), hidden, runs, energy)
        st.epochs = mean_ci([r["epochs"] for r in conv])
        st.energy = mean_ci([metric(r, energy) for r in conv])
        st.inefficiency = mean_ci([metric(r, "inefficiency_M1") for r in conv])
        st.test_accuracy = mean_ci([r.get("test_accuracy") for r in conv])
        presets = sorted({p for r in conv for p in (r.get("hardware") or {})})
        st.joules = {p: mean_ci([metric(r, f"energy_j:{p}") for r in conv]) for p in presets}
        if wear:
            st.max_writes = mean_ci([wear.get(r.get("run_id")) for r in conv
                                     if wear.get(r.get("run_id")) is not None])
        out[hidden].append(st)
    return dict(out)


def pareto(settings) -> list:
    """All-converged settings not beaten in both mean epochs and mean energy, by epochs."""
    ok = sorted((s for s in settings if s.all_converged and math.isfinite(s.energy[0])),
                key=lambda s: (s.epochs[0], s.energy[0]))
    front, best = [], math.inf
    for s in ok:
        if s.energy[0] < best:
            front.append(s)
            best = s.energy[0]
    return front


def best_per_family(settings) -> dict:
    out = {}
    for s in settings:
        if s.all_converged and math.isfinite(s.energy[0]):
            if s.family not in out or s.energy[0] < out[s.family].energy[0]:
                out[s.family] = s
    return dict(sorted(out.items(), key=lambda kv: kv[1].energy[0]))


def versus_baseline(settings, baseline=BASELINE, tolerance=0.0) -> list:
    """For every all-converged setting outside the baseline rule: the reference (cheapest
    baseline setting at most as slow, within ``tolerance``), the energy ratio reference /
    setting, and whether it wins (mean) and clearly wins (95% intervals apart)."""
    base = [s for s in settings if s.family == baseline and s.all_converged]
    rows = []
    if not base:
        return rows
    for s in settings:
        if s.family == baseline or not s.all_converged or not math.isfinite(s.energy[0]):
            continue
        in_time = [b for b in base if b.epochs[0] <= s.epochs[0] * (1.0 + tolerance)]
        faster_than_all = not in_time
        ref = min(in_time, key=lambda b: b.energy[0]) if in_time else \
            min(base, key=lambda b: b.epochs[0])
        ratio = ref.energy[0] / s.energy[0] if s.energy[0] > 0 else math.inf
        clear = (math.isfinite(s.energy[2]) and math.isfinite(ref.energy[1])
                 and s.energy[2] < ref.energy[1])
        rows.append({"setting": s, "reference": ref, "ratio": ratio,
                     "wins": s.energy[0] < ref.energy[0], "clear": bool(clear),
                     "faster_than_every_baseline": faster_than_all})
    rows.sort(key=lambda r: -r["ratio"])
    return rows


# ----------------------------------------------------------------------------- formatting

def _ci(t, fmt="{:.3g}"):
    mean, lo, hi, n = t if t else (math.nan,) * 3 + (0,)
    if not math.isfinite(mean):
        return "-"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return fmt.format(mean)
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _table(head, rows) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _setting_cells(s, presets, wear):
    cells = [s.label, f"{s.n_converged}/{s.n}", _ci(s.epochs, "{:.2f}"), _ci(s.energy),
             _ci(s.inefficiency, "{:.1f}"), _ci(s.test_accuracy, "{:.4f}")]
    cells += [_ci(s.joules.get(p)) for p in presets]
    if wear:
        cells.append(_ci(s.max_writes, "{:.0f}"))
    return cells


def format_settings(by_hidden, wear=False) -> str:
    """Markdown: every setting of every network size, by rule and label."""
    parts = []
    for hidden, settings in by_hidden.items():
        energy = settings[0].energy_name
        presets = sorted({p for s in settings for p in s.joules})
        head = ["setting", "converged", "epochs [95% CI]", f"{energy} [95% CI]", "M1/M1_min",
                "test acc"] + [f"J {p}" for p in presets] + (["max writes/synapse"]
                                                              if wear else [])
        rows = [_setting_cells(s, presets, wear)
                for s in sorted(settings, key=lambda s: (s.family, s.label))]
        parts += [f"## {hidden} hidden units: every setting\n", _table(head, rows), ""]
    return "\n".join(parts)


def format_frontier(by_hidden, baseline=BASELINE, tolerance=0.0, wear=False) -> str:
    """Markdown: per network size the front, the best setting of each rule, the comparison
    with the baseline rule, and the winner."""
    parts = []
    for hidden, settings in by_hidden.items():
        energy = settings[0].energy_name
        presets = sorted({p for s in settings for p in s.joules})
        head = ["setting", "converged", "epochs [95% CI]", f"{energy} [95% CI]", "M1/M1_min",
                "test acc"]
        head += [f"J {p}" for p in presets] + (["max writes/synapse"] if wear else [])
        parts.append(f"## {hidden} hidden units\n")
        parts.append("Pareto front (energy vs learning time):\n")
        parts.append(_table(head, [_setting_cells(s, presets, wear)
                                   for s in pareto(settings)]))
        best = best_per_family(settings)
        parts.append("\nEach rule's best setting (lowest mean energy, every seed converged):\n")
        parts.append(_table(["rule"] + head, [[fam] + _setting_cells(s, presets, wear)
                                              for fam, s in best.items()]))
        rows = versus_baseline(settings, baseline, tolerance)
        if rows:
            parts.append(f"\nAgainst {baseline} at equal learning time (reference: the "
                         f"cheapest {baseline} setting at most as slow):\n")
            table = []
            for r in rows:
                s, ref = r["setting"], r["reference"]
                verdict = ("clearly lower" if r["clear"] else "lower (intervals overlap)"
                           if r["wins"] else "not lower")
                if r["faster_than_every_baseline"]:
                    verdict += "; faster than every baseline setting"
                table.append([s.label, _ci(s.epochs, "{:.2f}"), _ci(s.energy), ref.label,
                              _ci(ref.epochs, "{:.2f}"), _ci(ref.energy),
                              f"{r['ratio']:.2f}", verdict])
            parts.append(_table(["setting", "epochs", energy, f"{baseline} reference",
                                 "ref epochs", f"ref {energy}", "ref/setting", "verdict"],
                                table))
            winners = [r for r in rows if r["clear"]]
            parts.append("\n" + (f"{len(winners)} setting(s) clearly beat {baseline} in "
                                 f"energy at equal learning time; the best: "
                                 f"{winners[0]['setting'].label} "
                                 f"({winners[0]['ratio']:.2f}x less)."
                                 if winners else
                                 f"No setting clearly beats {baseline} in energy at equal "
                                 "learning time."))
        if best:
            win = next(iter(best.values()))
            parts.append(f"\nWinner (lowest mean {energy}): {win.label}, "
                         f"{_ci(win.energy)} in {_ci(win.epochs, '{:.2f}')} epochs.")
        failed = [s for s in settings if not s.all_converged]
        if failed:
            parts.append(f"\nNot in the front ({len(failed)} setting(s) with a seed that did "
                         f"not converge): " + "; ".join(f"{s.label} {s.n_converged}/{s.n}"
                                                        for s in failed))
        parts.append("")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- command line

def _wear(path, summaries) -> dict:
    """Largest per-synapse write count of each run (from its stored write-count maps)."""
    from .store import load_run
    out = {}
    for s in summaries:
        if s.get("status") != "converged":
            continue
        run = load_run(path, s["run_id"], parts=("write_counts",))
        maps = run.get("write_counts") or {}
        out[s["run_id"]] = max((int(np.max(m)) for m in maps.values() if np.size(m)),
                               default=0)
    return out


def _check_options(args, summaries) -> None:
    """--hidden and --energy must name what the files hold (ConfigError otherwise)."""
    from .errors import ConfigError
    finished = [s for s in summaries if s.get("status") in ("converged", "not_converged",
                                                            "diverged")]
    if args.hidden:
        present = sorted({str(s.get("hidden")) for s in finished})
        unknown = [h for h in args.hidden if str(h) not in present]
        if unknown:
            raise ConfigError(f"The '--hidden' option must name network sizes with finished "
                              f"runs: one of {', '.join(present) or '(none)'}. Got "
                              f"{', '.join(unknown)} instead.")
    if finished and not any(metric(s, args.energy) is not None for s in finished):
        measures = sorted({k for s in finished for k, v in (s.get("energy") or {}).items()
                           if isinstance(v, dict) and "total" in v}) + sorted(
            {f"energy_j:{p}" for s in finished for p in (s.get("hardware") or {})})
        raise ConfigError(f"The '--energy' option must be a measure the runs hold: one of "
                          f"{', '.join(measures)}. Got {args.energy!r} instead.")


def cmd_frontier(args) -> int:
    from .cli import check_option_number
    from .errors import ConfigError
    from .rules import RULES
    from .store import read_runs
    check_option_number(args.tolerance, "--tolerance", 0.0)
    base = args.baseline[len("lazy+"):] if args.baseline.startswith("lazy+") else args.baseline
    if base not in RULES:
        raise ConfigError(f"The '--baseline' option must be a rule ({', '.join(RULES)}, or "
                          f"lazy+RULE). Got {args.baseline!r} instead.")
    summaries, wear = [], {}
    for path in args.results:
        runs = read_runs(path)
        summaries += runs
        if args.wear:
            wear.update(_wear(path, runs))
    _check_options(args, summaries)
    if args.hidden:
        wanted = {str(h) for h in args.hidden}
        summaries = [s for s in summaries if str(s.get("hidden")) in wanted]
    by_hidden = collect(summaries, args.energy, wear if args.wear else None)
    if args.json:
        out = {str(h): {"settings": [s.to_dict() for s in ss],
                        "pareto": [s.label for s in pareto(ss)],
                        "best": {f: s.label for f, s in best_per_family(ss).items()},
                        "versus_baseline": [{"setting": r["setting"].label,
                                             "reference": r["reference"].label,
                                             "ratio": r["ratio"], "wins": r["wins"],
                                             "clear": r["clear"]}
                                            for r in versus_baseline(ss, args.baseline,
                                                                     args.tolerance)]}
               for h, ss in by_hidden.items()}
        print(json.dumps(out, default=float))
    else:
        sys.stdout.write(format_frontier(by_hidden, args.baseline, args.tolerance,
                                         args.wear) + "\n")
        if args.all:
            sys.stdout.write(format_settings(by_hidden, args.wear) + "\n")
    return 0


def add_frontier_parser(sub) -> None:
    p = sub.add_parser("frontier", help="energy vs learning time: Pareto front, each rule's "
                                        "best setting, the winner")
    p.add_argument("results", nargs="+", help="HDF5 results file(s)")
    p.add_argument("--hidden", action="append", default=None,
                   help="only this network size (repeatable)")
    p.add_argument("--energy", default="M1",
                   help="M1 (default), M0, or energy_j:PRESET (joules on a priced technology)")
    p.add_argument("--baseline", default=BASELINE, help="the rule to beat (default combined)")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="relative slack on 'equal learning time' (default 0)")
    p.add_argument("--wear", action="store_true",
                   help="add the largest per-synapse write count (reads the count maps)")
    p.add_argument("--all", action="store_true", help="also list every setting")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_frontier)

"""``neuroenergy hardware``: list the presets, or re-price stored runs on them."""
from __future__ import annotations

import json

from .errors import ConfigError


def add_hardware_parser(sub):
    p = sub.add_parser("hardware", help="hardware presets; re-price stored runs")
    p.add_argument("file", nargs="?", help="HDF5 results file whose runs to re-price")
    p.add_argument("--list", action="store_true", help="print the presets and their sources")
    p.add_argument("--presets", default=None,
                   help="comma-separated presets to price on (default: those stored)")
    p.add_argument("--w-max", type=float, default=None,
                   help="weight range mapped onto the devices (default: as stored)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_hardware)


def reprice_run(summary, counts, presets_wanted, w_max):
    """Per preset: a priced report from the stored tallies, or the reasons it needs a re-run."""
    import numpy as np
    from .hardware import build_model
    stored = summary.get("hardware") or {}
    shapes = [tuple(np.shape(counts["input"])), tuple(np.shape(counts["output"]))]
    out = {}
    for name in presets_wanted:
        model = build_model(name, w_max)
        tally = (stored.get(name) or {}).get("tally")
        if tally is None:
            out[name] = {"needs_rerun": [f"{name} was not tallied during this run: its pulse "
                                         "and bit counts need a re-run with --hardware " + name]}
            continue
        issues = model.reprice_issues(np.asarray(tally["params"]))
        if issues:
            out[name] = {"needs_rerun": issues}
            continue
        report = model.price(np.asarray(tally["stats"]), [counts["input"], counts["output"]],
                             shapes, summary["samples"])
        out[name] = report.to_dict()
    return out


def cmd_hardware(args) -> int:
    from hardware_models import presets
    if args.list or not args.file:
        if args.json:
            print(json.dumps(presets.describe_all(), default=str))
        else:
            print(presets.listing())
        return 0
    from .cli import check_option_number
    from .hardware import DEFAULT_W_MAX, check_presets
    from .store import load_run, read_runs
    if args.w_max is not None:
        check_option_number(args.w_max, "--w-max", 0.0, 100.0, lo_open=True)
    try:
        presets_wanted = check_presets(args.presets.split(",")) if args.presets else None
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("The 'hardware' parameter",
                                           "The '--presets' option")) from None
    every = read_runs(args.file)
    runs = [r for r in every if r.get("status") not in ("unreadable", "error")]
    skipped = len(every) - len(runs)
    if not runs:
        raise ConfigError(f"{args.file} holds no finished runs to re-price"
                          + (f" ({skipped} failed or unreadable)." if skipped else "."))
    rows = []
    for summary in runs:
        full = load_run(args.file, summary["run_id"], parts=("write_counts",))
        cfg = summary.get("config", {})
        wanted = presets_wanted or tuple(summary.get("hardware") or {})
        w_max = args.w_max if args.w_max is not None else cfg.get("hardware_w_max", DEFAULT_W_MAX)
        row = {"run_id": summary["run_id"], "rule": summary.get("rule"),
               "hidden": summary.get("hidden"), "seed": summary.get("seed")}
        lost = (full.get("missing") or {}).get("write_counts")
        if lost:  # a damaged run: say so, price the others
            row["hardware"] = {name: {"needs_rerun": [f"its write counts are {lost}"]}
                               for name in wanted}
            row["error"] = f"write counts {lost}"
        else:
            row["hardware"] = reprice_run(summary, full["write_counts"], wanted, w_max)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    if skipped:
        print(f"({skipped} failed or unreadable runs skipped; `neuroenergy show {args.file}` "
              "lists them)")
    for row in rows:
        print(f"{row['run_id']} ({row['rule']}, {row['hidden']} hidden, seed {row['seed']})")
        if row.get("error"):
            print(f"    cannot be re-priced: {row['error']}")
            continue
        if not row["hardware"]:
            print("    no hardware tallies stored; re-run with --hardware PRESETS")
        for name, rep in row["hardware"].items():
            if "needs_rerun" in rep:
                print(f"    {name:<14} needs a re-run: {'; '.join(rep['needs_rerun'])}")
            else:
                life = rep.get("lifetime_runs")
                life_s = "unlimited" if rep.get("lifetime_runs_unlimited") else \
                    (f"{life:.3g} runs" if life is not None else "-")
                print(f"    {name:<14} {rep['energy_j']:.3e} J   lifetime {life_s}")
    return 0

"""``neuroenergy spiking convert | train | compare``: the Brian2 bridge on the command line.

Every handler returns an exit code; with ``--json`` the last stdout line is one JSON object.
Brian2 is imported only when a command runs, so the parser exists without it.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

from ..errors import ConfigError

DEFAULT_READOUTS_MS = (10.0, 20.0, 50.0, 100.0, 200.0)
_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|us)?\s*$")


def parse_ms(text: str) -> float:
    """'100ms', '0.1s', '500us' or a bare number of milliseconds -> milliseconds."""
    m = _TIME.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"expected a time such as 100ms or 0.1s, got {text!r}")
    value = float(m.group(1))
    return value * {"ms": 1.0, None: 1.0, "s": 1000.0, "us": 1e-3}[m.group(2)]


def _ms_list(text: str) -> tuple:
    return tuple(parse_ms(t) for t in text.split(",") if t.strip())


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _common(p, default_target="cython"):
    from ._backend import TARGETS
    p.add_argument("--target", default=default_target,
                   help=f"Brian2 target: {' | '.join(TARGETS)} (default {default_target})")
    p.add_argument("--seed", type=_int, default=0, help="Brian2 seed (and numpy seeds)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _learning_options(p):
    p.add_argument("--hidden", type=_int, default=100, help="hidden units, bias unit included")
    p.add_argument("--samples", type=_int, default=5000, help="training presentations")
    p.add_argument("--duration", type=parse_ms, default=50.0, help="presentation (50ms)")
    p.add_argument("--dt", type=parse_ms, default=1.0, help="time step (1ms)")
    p.add_argument("--input", default="regular", help="regular | poisson")
    p.add_argument("--max-rate", type=float, default=200.0, help="pixel rate in Hz (200)")
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--lr-out", type=float, default=None)
    p.add_argument("--target-rate", type=float, default=0.5,
                   help="label's target output rate, spikes per step (0.5)")
    p.add_argument("--chunk", type=_int, default=500, help="presentations per Brian2 run()")
    p.add_argument("--eval-images", type=_int, default=1000,
                   help="test images presented as spikes before and after training")
    p.add_argument("--target-accuracy", type=float, default=0.85,
                   help="accuracy for 'samples to target' (0.85)")
    p.add_argument("--k", type=_int, default=None, help="path size (path, combined)")
    p.add_argument("--k-fraction", type=float, default=None)
    p.add_argument("--p", type=float, default=None, help="write fraction (top-fraction, "
                   "combined): a threshold on |dw| tracks it")
    p.add_argument("--p-out", type=float, default=None)
    p.add_argument("--path-selection", default=None, help="random | first")
    p.add_argument("--hardware", default=None, help="comma-separated hardware presets")


def add_spiking_parser(subparsers) -> None:
    """Register ``spiking`` with its ``convert``, ``train`` and ``compare`` sub-commands."""
    sp = subparsers.add_parser("spiking", help="Brian2 bridge: spiking inference and learning "
                               "(needs pip install neuroenergy[brian2])")
    sp.set_defaults(handler=_missing_subcommand)
    sub = sp.add_subparsers(dest="spiking_command", parser_class=type(sp))

    p = sub.add_parser("convert", help="convert a stored run's network to spiking neurons "
                       "and classify test images")
    p.add_argument("results", help="HDF5 results file holding the trained run")
    p.add_argument("--run", default=None, help="run id (needed when the file holds several)")
    p.add_argument("--duration", type=parse_ms, default=100.0,
                   help="presentation time per image (100ms)")
    p.add_argument("--images", type=_int, default=1000, help="test images (1000)")
    p.add_argument("--dt", type=parse_ms, default=1.0, help="time step (1ms)")
    p.add_argument("--input", default="current", help="current | poisson")
    p.add_argument("--leak-mode", default="paired", help="paired | drop")
    p.add_argument("--max-rate", type=float, default=1000.0, help="Poisson rate of 1 (Hz)")
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--readouts", type=_ms_list, default=None,
                   help="extra read-out times, e.g. 10ms,20ms,50ms")
    p.add_argument("--table", action="store_true",
                   help="accuracy-vs-time table: read-outs at 10,20,50,100,200 ms (one run "
                        "of the longest)")
    p.add_argument("--out", default=None,
                   help="HDF5 file for the results (default: the run's own file)")
    p.add_argument("--no-store", action="store_true", help="do not store the results")
    _common(p)
    p.set_defaults(handler=cmd_convert)

    p = sub.add_parser("train", help="train a spiking network with a rule as the gate")
    p.add_argument("--rule", default="backprop", help="backprop | top-fraction | path | "
                   "combined")
    _learning_options(p)
    p.add_argument("--out", default=None, help="HDF5 file to store the run in")
    _common(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("compare", help="rate vs spiking learning, per rule: one table, "
                       "stored in HDF5")
    p.add_argument("--rules", default="backprop,path,top-fraction,combined",
                   help="comma-separated rules (default: all four)")
    _learning_options(p)
    p.add_argument("--rate-lr", type=float, default=0.01, help="rate network learning rate")
    p.add_argument("--out", default="spiking_compare.h5", help="HDF5 file (created if needed)")
    _common(p)
    p.set_defaults(handler=cmd_compare)


def _missing_subcommand(args) -> int:
    raise ConfigError("`neuroenergy spiking` needs one of: convert, train, compare "
                      "(see `neuroenergy spiking --help`).")


def _dump(obj) -> str:
    return json.dumps(obj, default=_json_default)


def _json_default(obj):
    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _check_out(path) -> None:
    from ..cli import check_output_path
    check_output_path(path)


# ----------------------------------------------------------------------------- convert

def cmd_convert(args) -> int:
    from pathlib import Path
    from ._backend import brian
    from .convert import SpikingConfig
    from .inference import evaluate_conversion, format_table
    readouts = tuple(args.readouts or ())
    duration = args.duration
    if args.table:
        readouts = tuple(sorted(set(readouts) | set(DEFAULT_READOUTS_MS)))
        duration = max(duration, max(readouts))
    if args.table and args.duration < duration:
        readouts = readouts + (args.duration,)
    readouts = tuple(r for r in readouts if r != duration)
    config = SpikingConfig(duration_ms=duration, dt_ms=args.dt, input=args.input,
                           leak_mode=args.leak_mode, percentile=args.percentile,
                           max_rate_hz=args.max_rate, target=args.target, seed=args.seed,
                           readouts_ms=readouts)
    if not Path(args.results).is_file():
        raise ConfigError(f"The results file {args.results} does not exist; train and store "
                          "a run first (neuroenergy train --out RUN.h5).")
    out = args.out or args.results
    if not args.no_store:
        _check_out(out)
    brian()  # fail early, before loading data, when brian2 is missing
    network, run_id, dataset = _load_run(args.results, args.run)
    data = _load_data(dataset)
    report = evaluate_conversion(network, data, config, args.images, report_ms=args.duration)
    report["run_id"] = run_id
    report["results_file"] = str(args.results)
    if not args.no_store:
        tag = f"{config.input}_{report['leak_mode']}_{config.duration_ms:g}ms_{config.target}"
        group = (f"runs/{run_id}/spiking/convert/{tag}" if out == args.results
                 else f"spiking/convert/{run_id}/{tag}")
        _store_report(out, group, report)
        report["stored"] = {"file": str(out), "group": group}
        print(f"stored the conversion results in {out}:{group}", file=sys.stderr)
    if args.json:
        print(_dump(report))
    else:
        print(format_table(report))
    return 0


def _load_run(path, run_id):
    from ..store import load_network, read_runs
    runs = [r for r in read_runs(path) if r.get("status") != "unreadable"]
    if run_id is None:
        if len(runs) != 1:
            names = ", ".join(r["run_id"] for r in runs[:10]) or "none"
            raise ConfigError(f"{path} holds {len(runs)} runs ({names}); choose one with --run.")
        run_id = runs[0]["run_id"]
    summary = next((r for r in runs if r["run_id"] == run_id), None)
    network = load_network(path, run_id)
    dataset = (summary or {}).get("config", {}).get("dataset", "mnist")
    return network, run_id, dataset


def _load_data(dataset):
    from ..data import load_dataset
    return load_dataset(dataset)


def _store_report(path, group, report) -> None:
    from ..store import write_extra
    import numpy as np
    rows = report["rows"]
    arrays = {key: np.array([r[key] for r in rows], np.float64) for key in
              ("duration_ms", "snn_accuracy", "tie_fraction", "spikes_per_image",
               "synaptic_ops_per_image", "hidden_spikes_per_image", "input_spikes_per_image")}
    for profile in report["energy_j_per_image"]:
        arrays[f"energy_j_per_image/{profile}"] = np.array(
            [r["energy_j_per_image"][profile] for r in rows], np.float64)
    attrs = {"report_json": _dump(report), "ann_accuracy": report["ann_accuracy"],
             "snn_accuracy": report["snn_accuracy"], "duration_ms": report["duration_ms"],
             "target": report["target"], "version": report["version"]}
    write_extra(path, group, arrays, attrs)


# ----------------------------------------------------------------------------- train

def _learn_config(args, rule_name, **overrides):
    from ..rules import make_rule
    from .learn import LearnConfig
    rule = make_rule(rule_name, p=args.p, p_out=args.p_out, k=args.k,
                     k_fraction=args.k_fraction, selection=args.path_selection) \
        if rule_name == getattr(args, "rule", None) else _rule_for_compare(rule_name, args)
    kw = dict(rule=rule, hidden=args.hidden, samples=args.samples, seed=args.seed,
              duration_ms=args.duration, dt_ms=args.dt, input=args.input,
              max_rate_hz=args.max_rate, lr=args.lr, lr_out=args.lr_out,
              target_rate=args.target_rate, chunk=args.chunk, eval_images=args.eval_images,
              target=args.target, target_accuracy=args.target_accuracy,
              hardware=tuple(h for h in (args.hardware or "").split(",") if h))
    kw.update(overrides)
    return LearnConfig(**kw)


def _rule_for_compare(name, args):
    """Each rule with the parameters it takes from the shared options (defaults otherwise)."""
    from ..rules import make_rule
    given = {"backprop": {}, "path": dict(k=args.k, k_fraction=args.k_fraction,
                                          selection=args.path_selection),
             "top-fraction": dict(p=args.p, p_out=args.p_out),
             "combined": dict(k=args.k, k_fraction=args.k_fraction,
                              selection=args.path_selection, p=args.p, p_out=args.p_out)}
    if name not in given:
        raise ConfigError(f"The 'rules' option must list rules from backprop, path, "
                          f"top-fraction, combined. Got {name!r} instead.")
    return make_rule(name, **given[name])


def _progress(enabled, desc):
    from ..cli import _Progress
    return _Progress(enabled, desc)


def cmd_train(args) -> int:
    from ._backend import brian
    from .learn import train_spiking
    config = _learn_config(args, args.rule)
    _check_out(args.out)
    brian()
    raw = _raw()
    progress = _progress(not args.json, f"spiking {config.rule.name}")
    try:
        result = train_spiking(config, raw, progress=progress)
    finally:
        progress.close()
    summary = result.to_dict()
    if args.out:
        summary["stored"] = {"file": args.out, "group": store_spiking_run(args.out, result)}
        print(f"stored spiking run in {args.out}:{summary['stored']['group']}", file=sys.stderr)
    if args.json:
        print(_dump(summary))
    else:
        from .compare import format_rows
        print(format_rows([summary]))
    return 0


def _raw():
    from ..data import load_raw
    return load_raw("mnist", fetch=True)


def store_spiking_run(path, result) -> str:
    """Store a spiking training run under ``spiking/runs/<id>``; returns the group name."""
    import uuid
    from ..store import write_extra
    cfg = result.config
    group = (f"spiking/runs/{cfg.rule.name}_h{cfg.hidden}_s{cfg.seed}_{cfg.target}_"
             f"{uuid.uuid4().hex[:8]}")
    arrays = {f"curves/{k}": v for k, v in result.curves.items()}
    arrays.update({"weights/w_in": result.w_in, "weights/w_out": result.w_out,
                   "write_counts/input": result.write_counts[0],
                   "write_counts/output": result.write_counts[1],
                   "plastic_units": result.plastic_units})
    summary = result.to_dict()
    write_extra(path, group, arrays, {"summary_json": _dump(summary),
                                      "rule": cfg.rule.name, "version": result.version})
    return group


def cmd_compare(args) -> int:
    from ._backend import brian
    from .compare import compare_rules, format_rows
    names = [n.strip() for n in args.rules.split(",") if n.strip()]
    configs = [_learn_config(args, name) for name in names]
    _check_out(args.out)
    brian()
    table = compare_rules(configs, rate_lr=args.rate_lr, out=args.out,
                          progress=(lambda line: print(line, file=sys.stderr))
                          if not args.json else None)
    if args.json:
        print(_dump(table))
    else:
        print(format_rows(table["rows"]))
    return 0

"""``neuroenergy compare``: the main job - the study's four rules on one network size, a
table, an HDF5 file and a comparison figure.

Defaults (chosen so that every rule converges to 95% at 100 hidden units, seeds 0-2):
top-fraction p = 0.01 (the study's headline setting), path k = 50 (k = 20 does not reach 95%
in 5 epochs at 100 units), combined k = 50 with p = 0.2 of the path's plastic synapses.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

from .errors import ConfigError

COMPARE_RULES = (
    ("backprop", {}),
    ("top-fraction", {"p": 0.01}),
    ("path", {"k": 50}),
    ("combined", {"k": 50, "p": 0.2}),
)


def compare_rules(hidden):
    """The four rules with the compare defaults; a path never exceeds hidden - 1 units (of
    the smallest layer, for several hidden layers)."""
    from .rules import make_rule
    smallest = min(hidden) if isinstance(hidden, (tuple, list)) else hidden
    rules = []
    for name, params in COMPARE_RULES:
        params = dict(params)
        if "k" in params:
            params["k"] = max(1, min(params["k"], smallest - 1))
        rules.append(make_rule(name, **params))
    return rules


def _default_presets():
    from .hardware import DEFAULT_COMPARE_PRESETS
    return DEFAULT_COMPARE_PRESETS


def add_compare_parser(sub, add_run_options):
    p = sub.add_parser("compare", help="the main job: the four rules side by side")
    add_run_options(p, with_rule=False)
    p.add_argument("--seeds", type=int, default=1,
                   help="number of seeds, starting at --seed (default 1)")
    p.add_argument("--figure", default=None, help="PNG path (default: next to --out)")
    p.add_argument("--no-hardware", action="store_true",
                   help="price no writes on hardware (faster; overrides --hardware). By "
                        "default every write is priced on the 'default' technologies: "
                        + ", ".join(_default_presets()))
    p.add_argument("--workers", type=int, default=None,
                   help="runs trained at once, each in its own process (default: one per "
                        "core, at most one per run; 1 trains here, with progress bars). "
                        "Every run uses one BLAS thread, so the numbers do not depend on it")
    p.add_argument("--json", action="store_true", help="print the summaries as JSON")
    p.add_argument("--resume", action="store_true",
                   help="run only the runs of this comparison not yet stored in --out")
    p.set_defaults(handler=cmd_compare)


def _stored_summary(out, summary) -> dict:
    """A run of this comparison stored by an earlier (interrupted) call, with its curves."""
    from .store import load_run
    curves = load_run(out, summary["run_id"], parts=("curves",)).get("curves") or {}
    return {**summary, "curves": {k: v.tolist() for k, v in curves.items()}}


def _summary_of_record(record, run_id) -> dict:
    curves = {name.split("/", 1)[1]: v.tolist() for name, v in record["arrays"].items()
              if name.startswith("curves/")}
    return {**record["summary"], "run_id": run_id, "curves": curves}


def _report_run(summary, quiet) -> None:
    if quiet:
        return
    if summary.get("status") == "error":
        print(f"{summary['rule']:>12} seed {summary['seed']}: error: {summary.get('error')}",
              file=sys.stderr)
        return
    print(f"{summary['rule']:>12} seed {summary['seed']}: {summary['status']} after "
          f"{summary['epochs']:.2f} epochs, M1 {summary['energy']['M1']['total']:.3g}",
          file=sys.stderr)


def _train_here(todo, data, out, quiet) -> dict:
    """The runs one after the other in this process (one BLAS thread, as the workers)."""
    from .cli import _Progress
    from .executors import _one_blas_thread
    from .store import record_from_result, write_run
    from .train import train
    new = {}
    for config, key in todo:
        progress = _Progress(not quiet, f"{config.rule.name} seed {config.seed}")
        try:
            with _one_blas_thread():
                result = train(config, data, progress=progress)
        finally:
            progress.close()
        record = record_from_result(result, key=key)
        new[key] = _summary_of_record(record, write_run(out, record))
        _report_run(new[key], quiet)
    return new


def _train_in_workers(points, workers, out, quiet) -> dict:
    """The runs (sweep-like points: config dict and key) in a pool of worker processes, each
    stored as soon as it is back. A run that failed is reported, not stored (as in this
    process, where it raises), so that --resume runs it again."""
    from .executors import ProcessExecutor
    from .store import write_run
    from .sweep import _catch_sigint
    if not quiet:
        print(f"training {len(points)} runs in {workers} worker processes", file=sys.stderr)
    new = {}
    records = ProcessExecutor(workers).run(points, store_weights=True)
    # a Ctrl-C that lands in a weakref callback of the pool is printed and dropped by
    # Python: the sweep's flag makes the next finished run raise it again
    interrupted = []
    restore = _catch_sigint(interrupted)
    try:
        for record in records:
            failed = record["summary"].get("status") == "error"
            run_id = None if failed else write_run(out, record)
            new[record["key"]] = _summary_of_record(record, run_id)
            _report_run(new[record["key"]], quiet)
            if interrupted:
                raise KeyboardInterrupt
    finally:
        restore()
        records.close()  # stops the workers now, also on Ctrl-C
    return new


def cmd_compare(args) -> int:
    from .cli import EXIT_INTERRUPTED, check_output_path, config_from_args, load_data_for
    from .rules import Backprop
    from .store import read_runs
    from .sweep import _check_data, point_key
    if args.seeds < 1:
        raise ConfigError(f"The '--seeds' option must be an int >= 1. Got {args.seeds} instead.")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"The '--workers' option must be an int >= 1. Got {args.workers} "
                          "instead.")
    # every write is priced on the default technologies unless asked otherwise: for the
    # dense rules (backprop at 100 units: ~80k writes per sample) that is most of the run
    # time, so --no-hardware is there for quick looks
    if args.no_hardware:
        args.hardware = None
    elif args.hardware is None or args.hardware == "default":
        args.hardware = ",".join(_default_presets())
    config_from_args(args, Backprop())  # the shared options, before rules are derived from them
    hidden_text = "x".join(map(str, args.hidden)) if isinstance(args.hidden, tuple) \
        else args.hidden
    out = Path(args.out or f"results/compare_h{hidden_text}_s{args.seed}.h5")
    if args.out is None:
        out.parent.mkdir(parents=True, exist_ok=True)
    check_output_path(out)
    figure = Path(args.figure) if args.figure else out.with_suffix(".png")
    configs = []
    for seed in range(args.seed, args.seed + args.seeds):
        args.seed, seed0 = seed, args.seed
        configs += [config_from_args(args, rule) for rule in compare_rules(args.hidden)]
        args.seed = seed0
    keys = [point_key(c.to_dict()) for c in configs]  # as a sweep's: resumable
    done = {s["key"]: s for s in (read_runs(out) if out.exists() else [])
            if s.get("key") in keys and s.get("status") != "unreadable"}
    if done and not args.resume:
        raise ConfigError(f"{out} already holds {len(done)} of the {len(configs)} runs of this "
                          "comparison. Rerun with --resume to run only the missing ones, or "
                          "choose another --out.")
    todo = [(config, key) for config, key in zip(configs, keys) if key not in done]
    workers = args.workers or min(os.cpu_count() or 1, len(todo))
    parallel = workers > 1 and len(todo) > 1
    if parallel:  # the data fetched and checked here, once; each worker loads its own copy
        points = [SimpleNamespace(config=config.to_dict(), key=key) for config, key in todo]
        _check_data(points)
    else:
        data = load_data_for(configs[0]) if todo else None
    new = {}
    try:
        if parallel:
            new = _train_in_workers(points, workers, out, args.json)
        else:
            new = _train_here(todo, data, out, args.json)
    except KeyboardInterrupt:  # count from the file: Ctrl-C may come while a run is stored
        finished = len({s.get("key") for s in read_runs(out) if s.get("key") in keys})
        stored = finished - len(done)
        print(f"neuroenergy: interrupted: {stored} finished runs of this session are stored "
              f"in {out} ({finished} of the {len(configs)} runs of this comparison); rerun the "
              f"same command with --resume to run the remaining {len(configs) - finished}.",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    summaries = [_stored_summary(out, done[key]) if key in done else new[key] for key in keys]
    failed = [s for s in summaries if s.get("status") == "error"]
    summaries = [s for s in summaries if s.get("status") != "error"]
    if summaries:
        _print_results(args, summaries, out, figure)
    for s in failed:
        print(f"neuroenergy: {s['rule']} seed {s['seed']} failed: {s.get('error')}",
              file=sys.stderr)
    if failed:  # a failure of the runs, not of the input: exit 1, not 2
        what = ("every run of this comparison failed (no figure drawn)" if not summaries else
                f"{len(failed)} of the {len(configs)} runs failed")
        print(f"neuroenergy: {what}; failed runs are not stored in {out}: rerun the same "
              "command with --resume to run them again.", file=sys.stderr)
    return 1 if failed else 0


def _print_results(args, summaries, out, figure):
    """The figure, then the tables (or JSON) of the runs that finished."""
    from .plots import plot_comparison
    from .report import format_hardware_table, format_table
    plot_comparison(summaries, figure)
    if args.json:
        from .cli import _json_default, json_safe
        print(json.dumps(json_safe(summaries), default=_json_default))
        return
    print(format_table(summaries, hardware=False))
    if args.hardware:
        mode = ("accounting mode: float training, every write priced as if on the device"
                if args.hardware_mode == "accounting" else
                f"device in the loop: {args.hardware.split(',')[0]} holds the weights, "
                "every write priced")
        print(f"\nWrites priced on hardware ({mode}; 'lost': updates below one device step)")
        print(format_hardware_table(summaries))
    print(f"\nresults: {out}\nfigure:  {figure}")

"""Commands ``neuroenergy sweep | show | plot | reproduce`` (registered through
``cli._EXTRA_COMMANDS``)."""
from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError

EXIT_INTERRUPTED = 130


def add_executor_options(p) -> None:
    p.add_argument("--executor", default="processes", choices=("serial", "processes", "dask"),
                   help="where runs execute (default: processes, one per core)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: all cores)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler, e.g. tcp://HOST:8786")
    p.add_argument("--dask-local", type=int, default=None, metavar="N",
                   help="start a Dask LocalCluster of N worker processes")
    p.add_argument("--resume", action="store_true",
                   help="run only the points not yet stored in the results file, and those "
                        "whose stored run failed (status 'error')")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def executor_args(args) -> dict:
    """executor, workers and scheduler from the options, with their combinations checked."""
    executor, workers = args.executor, args.workers
    if args.scheduler and args.dask_local:
        raise ConfigError("give either --scheduler ADDRESS (an existing Dask cluster) or "
                          "--dask-local N (a new local one), not both.")
    if args.dask_local is not None:
        if args.dask_local < 1:
            raise ConfigError(f"The '--dask-local' option must be an int >= 1. Got "
                              f"{args.dask_local} instead.")
        executor, workers = "dask", args.dask_local
    if args.scheduler:
        if workers is not None:
            raise ConfigError("--workers has no effect with --scheduler (the cluster has its "
                              "own workers); drop it.")
        executor = "dask"
    return {"executor": executor, "workers": workers, "scheduler": args.scheduler}


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM stops a sweep like Ctrl-C does: finished runs are stored, the file closed."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def cmd_sweep(args) -> int:
    from .cli import check_output_path
    from .sweep import SweepInterrupted, load_sweep, run_sweep
    sweep = load_sweep(args.sweep_file)
    check_output_path(args.out)
    print(f"{args.sweep_file}: {len(sweep.points)} runs"
          + (f" ({sweep.n_duplicates} duplicate points dropped)" if sweep.n_duplicates else ""),
          file=sys.stderr)
    try:
        with sigterm_as_interrupt():
            report = run_sweep(sweep, args.out, resume=args.resume,
                               progress=not args.quiet, **executor_args(args))
    except SweepInterrupted as exc:
        print(f"neuroenergy: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    c = report["counts"]
    print(f"{report['run']} runs in {report['seconds']:.0f} s ({report['executor']}), "
          f"{report['skipped']} already stored"
          + (f", {report['retried']} failed before and run again" if report['retried'] else "")
          + f": {c['converged']} converged, "
          f"{c['not_converged']} not converged, {c['diverged']} diverged, {c['error']} errors. "
          f"Results: {args.out}", file=sys.stderr)
    return 0


def cmd_show(args) -> int:
    from .analysis import format_summary, status_counts, summary_rows
    from .report import format_table
    from .store import read_runs
    summaries = read_runs(args.results)
    counts = status_counts(summaries)
    pending = sum(1 for s in summaries if s.get("pending"))
    if args.json:
        rows = summary_rows(summaries)
        from .cli import json_safe
        print(json.dumps(json_safe({"file": str(args.results), "runs": len(summaries),
                                    "counts": counts, "pending": pending, "groups": rows,
                                    "summaries": summaries}), default=_json_default))
        return 0
    print(f"{args.results}: {len(summaries)} runs - "
          + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    if pending:
        print(f"({pending} finished runs are still in the journal {args.results}.journal; "
              "the next writer, e.g. `sweep --resume`, merges them)")
    if not summaries:
        return 0
    print()
    print(format_table(summaries) if args.runs else format_summary(summary_rows(summaries)))
    errors = [s for s in summaries if s.get("status") in ("error", "unreadable")]
    for s in errors[:20]:
        print(f"\n{s.get('status')}: {s.get('run_id')}: {s.get('error')}")
    return 0


def _json_default(obj):
    import math
    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def cmd_plot(args) -> int:
    from .figures import plot_results
    if args.maps_hidden is not None:
        from .analysis import _size_order, hidden_key
        from .store import read_runs
        sizes = sorted({hidden_key(s) for s in read_runs(args.results)
                        if s.get("status") in ("converged", "not_converged")}, key=_size_order)
        if args.maps_hidden not in sizes:
            raise ConfigError(f"The '--maps-hidden' option must be a network size with finished "
                              f"runs in {args.results}: one of "
                              f"{', '.join(map(str, sizes)) or '(none)'}. "
                              f"Got {args.maps_hidden} instead.")
    paths = plot_results(args.results, args.out, hidden_for_maps=args.maps_hidden)
    for p in paths:
        print(p)
    if not paths:
        print(f"{args.results} holds no finished runs to plot.", file=sys.stderr)
    return 0


def cmd_reproduce(args) -> int:
    from .reproduce import reproduce
    from .sweep import SweepInterrupted
    try:
        with sigterm_as_interrupt():
            out = Path(args.out or ("results/reproduce-quick" if args.quick
                                    else "results/reproduce"))
            report = reproduce(out, quick=args.quick, resume=args.resume,
                               progress=not args.quiet, **executor_args(args))
    except SweepInterrupted as exc:
        print(f"neuroenergy: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"report: {report}")
    return 0


def add_sweep_parsers(sub) -> None:
    import argparse
    from . import sweep as sweep_module
    p = sub.add_parser("sweep", help="run a grid of runs from a TOML file into one HDF5 file",
                       description=sweep_module.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_file", help="sweep specification (TOML, see above)")
    p.add_argument("--out", required=True, help="HDF5 results file")
    add_executor_options(p)
    p.set_defaults(handler=cmd_sweep)

    p = sub.add_parser("show", help="summary table of a results file")
    p.add_argument("results", help="HDF5 results file")
    p.add_argument("--json", action="store_true", help="print everything as one JSON object")
    p.add_argument("--runs", action="store_true", help="one row per run instead of per group")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("plot", help="figures of a results file (PNG)")
    p.add_argument("results", help="HDF5 results file")
    p.add_argument("--out", required=True, help="folder for the figures")
    p.add_argument("--maps-hidden", type=int, default=None,
                   help="network size of the write-count maps (default: the smallest)")
    p.set_defaults(handler=cmd_plot)

    p = sub.add_parser("reproduce", help="run the study's grid and write the report")
    p.add_argument("--quick", action="store_true",
                   help="a subset that finishes within minutes on two cores")
    p.add_argument("--out", default=None,
                   help="output folder (default: results/reproduce[-quick])")
    add_executor_options(p)
    p.set_defaults(handler=cmd_reproduce)

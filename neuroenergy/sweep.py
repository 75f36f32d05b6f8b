"""Sweeps: a grid of runs from a TOML file, validated before any run starts, run by an
executor (serial, local processes or Dask) and stored by one writer, resumably.

A sweep file sets RunConfig fields; a list means "each of these" and the grid is the product
of all lists. Rules are given as ``rule = "backprop"`` or as ``[[rule]]`` tables whose rule
parameters may be lists too, and whose RunConfig fields override the grid for that rule::

    hidden = [100, 300, 1000]
    seeds = 3                      # seeds 0, 1, 2 (or a list: seed = [0, 5])
    max_epochs = 5

    [[rule]]
    name = "backprop"

    [[rule]]
    name = "top-fraction"
    p = [0.01, 0.05]

    [sweep]                        # options of the sweep itself
    store_weights = false          # default false: weights of large networks are big

A list of lists (or of tables) is an axis whose values are lists (``hidden = [[300, 100]]``:
one network with two hidden layers); ``hardware`` takes a list of preset names for one run,
and a list of such lists is an axis.
Every grid point has a stable key (a hash of its full canonical configuration): ``--resume``
runs only the points whose key is not yet in the results file, and those whose stored run
failed (status 'error': the failed record is replaced).
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from .config import RunConfig
from .errors import ConfigError, NeuroenergyError, StoreError
from .rules import RULES

SWEEP_OPTIONS = {"store_weights": bool, "name": str}
RULE_KEYS = ("rule", "rules")
MAX_REPORTED_ERRORS = 5


class SweepInterrupted(NeuroenergyError):
    """Ctrl-C (or SIGTERM) stopped a sweep; the finished runs are stored."""

    def __init__(self, message, stored, remaining):
        super().__init__(message)
        self.stored = stored
        self.remaining = remaining


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its canonical configuration dict and its stable key."""

    config: dict
    key: str

    @property
    def label(self) -> str:
        rule = self.config["rule"]
        params = ", ".join(f"{k}={v}" for k, v in rule.items() if k != "name" and v is not None)
        return (f"{rule['name']}{f' ({params})' if params else ''} hidden={self.config['hidden']}"
                f" seed={self.config['seed']}")


@dataclass
class Sweep:
    points: list
    store_weights: bool = False
    name: str = "sweep"
    source: str = ""
    n_duplicates: int = 0
    text: str = field(default="", repr=False)


def point_key(config_dict: dict) -> str:
    """A stable 16-hex-digit key: sha256 of the canonical JSON of a validated config dict."""
    canonical = json.dumps(config_dict, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _config_fields() -> list:
    return [f.name for f in fields(RunConfig) if f.name != "rule"]


def _unknown(name, known, where) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: unknown field {name!r}.{hint} Allowed: "
                       f"{', '.join(sorted(known))}.")


def _axis(name, value, where) -> list:
    """The values of one grid axis: a list as given, anything else as a single value. A list
    of lists is an axis of list values (``hidden = [[300, 100], [500]]``: two networks with
    hidden layers); ``hardware``, itself a list of names, is an axis only as a list of lists."""
    if isinstance(value, list) and value and (all(isinstance(v, list) for v in value)
                                              or all(isinstance(v, dict) for v in value)):
        return value  # lists (or tables, e.g. a rule's base rule) as the values
    if name == "hardware":
        return [value]
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: {name!r} is an empty list, so the grid is empty. Give "
                              "at least one value.")
        if any(isinstance(v, (list, dict)) for v in value):
            raise ConfigError(f"{where}: {name!r} must be a value or a list of values (all "
                              f"scalars, all lists or all tables). Got {value!r} instead.")
        return value
    return [value]


def _rule_tables(doc, where) -> list:
    given = [k for k in RULE_KEYS if k in doc]
    if len(given) > 1:
        raise ConfigError(f"{where}: give the rules once, as 'rule' or 'rules', not both.")
    rules = doc.get(given[0], "backprop") if given else "backprop"
    rules = rules if isinstance(rules, list) else [rules]
    if not rules:
        raise ConfigError(f"{where}: the rule list is empty, so the grid is empty.")
    tables = []
    for i, rule in enumerate(rules):
        if isinstance(rule, str):
            rule = {"name": rule}
        if not isinstance(rule, dict) or not isinstance(rule.get("name"), str):
            raise ConfigError(f"{where}: rule {i + 1} must be a rule name or a table with a "
                              f"'name' (one of {', '.join(RULES)}). Got {rule!r} instead.")
        if rule["name"] not in RULES:
            raise ConfigError(f"{where}: rule {i + 1} has name {rule['name']!r}; the rules are "
                              f"{', '.join(RULES)}.")
        tables.append(rule)
    return tables


def _seeds(doc, where):
    if "seeds" in doc and "seed" in doc:
        raise ConfigError(f"{where}: give 'seed' (values) or 'seeds' (a count or values), not "
                          "both.")
    seeds = doc.get("seeds", doc.get("seed", 0))
    if isinstance(seeds, int) and not isinstance(seeds, bool) and "seeds" in doc:
        if seeds < 1:
            raise ConfigError(f"{where}: 'seeds' must be a count >= 1 or a list of seeds. "
                              f"Got {seeds} instead.")
        return list(range(seeds))
    return _axis("seed", seeds, where)


def _expand_rule(table, grid, seeds, where) -> list:
    """Config dicts (not yet validated) of one rule table crossed with the grid."""
    rule_class = RULES[table["name"]]
    param_names = [n for n in rule_class.__dataclass_fields__]
    config_names = _config_fields()
    params, overrides = {}, {}
    if "seed" in table or "seeds" in table:
        seeds = _seeds(table, f"{where} (rule {table['name']!r})")
    for name, value in table.items():
        if name in ("name", "seed", "seeds"):
            continue
        if name in param_names:
            params[name] = _axis(name, value, f"{where} (rule {table['name']!r})")
        elif name in config_names:
            overrides[name] = _axis(name, value, f"{where} (rule {table['name']!r})")
        else:
            raise _unknown(name, param_names + config_names, f"{where} (rule {table['name']!r})")
    axes = {**grid, **overrides}
    names = list(params) + list(axes)
    out = []
    for values in itertools.product(*[params.get(n, axes.get(n)) for n in names], seeds):
        chosen = dict(zip(names, values[:-1]))
        rule = {"name": table["name"], **{n: chosen.pop(n) for n in params}}
        out.append({**chosen, "seed": values[-1], "rule": rule})
    return out


def parse_sweep(doc: dict, where: str = "sweep") -> Sweep:
    """Expand and validate a sweep document (the parsed TOML); every point is checked here,
    before any run starts."""
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(f"{where} is empty: set at least one RunConfig field or rule "
                          "(e.g. hidden = [100, 300]).")
    options = doc.get("sweep", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: [sweep] must be a table of options "
                          f"({', '.join(SWEEP_OPTIONS)}).")
    for name, value in options.items():
        if name not in SWEEP_OPTIONS:
            raise _unknown(name, list(SWEEP_OPTIONS), f"{where} [sweep]")
        if not isinstance(value, SWEEP_OPTIONS[name]):
            raise ConfigError(f"{where}: [sweep] {name} must be a "
                              f"{SWEEP_OPTIONS[name].__name__}. Got {value!r} instead.")
    config_names = _config_fields()
    grid = {}
    for name, value in doc.items():
        if name in ("sweep", "seed", "seeds") + RULE_KEYS:
            continue
        if name not in config_names:
            raise _unknown(name, config_names + ["seeds", "rule", "sweep"], where)
        grid[name] = _axis(name, value, where)
    seeds = _seeds(doc, where)
    raw = [c for t in _rule_tables(doc, where) for c in _expand_rule(t, grid, seeds, where)]
    points, seen, errors = [], set(), []
    for config in raw:
        try:
            canonical = RunConfig.from_dict(config).to_dict()
        except ConfigError as exc:
            errors.append(f"{_describe(config)}: {exc}")
            continue
        key = point_key(canonical)
        if key not in seen:
            seen.add(key)
            points.append(SweepPoint(canonical, key))
    if errors:
        distinct = list(dict.fromkeys(errors))
        more = f"\n  ... and {len(errors) - MAX_REPORTED_ERRORS} more" \
            if len(errors) > MAX_REPORTED_ERRORS else ""
        raise ConfigError(f"{where}: {len(errors)} of {len(raw)} grid points are invalid; "
                          f"nothing was run:\n  " + "\n  ".join(distinct[:MAX_REPORTED_ERRORS])
                          + more)
    return Sweep(points, options.get("store_weights", False), options.get("name", "sweep"),
                 where, len(raw) - len(points))


def _describe(config: dict) -> str:
    rule = config.get("rule", {})
    params = ", ".join(f"{k}={v!r}" for k, v in rule.items() if k != "name")
    rest = ", ".join(f"{k}={v!r}" for k, v in config.items() if k != "rule")
    return f"point [{rule.get('name')}{f' ({params})' if params else ''}; {rest}]"


def load_sweep(path) -> Sweep:
    """Read and validate a sweep TOML file (clear errors for syntax, fields, types, ranges)."""
    import tomllib
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc.strerror or exc}.") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from exc
    sweep = parse_sweep(doc, str(path))
    sweep.text = text
    return sweep


# ----------------------------------------------------------------------------- running

def _check_data(points) -> None:
    """Fail before any run if a data set is missing (fetches MNIST when it is not cached)."""
    from .data import load_raw
    for dataset in sorted({p.config["dataset"] for p in points}):
        load_raw(dataset, fetch=(dataset == "mnist"))


def run_sweep(sweep: Sweep, out, executor="processes", workers=None, scheduler=None,
              resume=False, progress=True) -> dict:
    """Run the points of ``sweep`` not yet in ``out`` and store every outcome there.

    ``executor`` is 'serial', 'processes' (``workers`` processes, default all cores) or
    'dask' (``scheduler`` address, or a LocalCluster of ``workers`` processes). Failed runs
    are stored with status 'error' (with ``resume``, such points run again). Returns counts
    per status and timings; raises :class:`SweepInterrupted` on Ctrl-C after storing what
    finished.
    """
    from .executors import make_executor
    from .store import ResultsWriter, read_runs
    out = Path(out)
    if out.exists() and not resume:
        n = len(read_runs(out))
        if n:
            raise StoreError(f"{out} already holds {n} runs. Rerun with --resume to run only the "
                             "missing points of this sweep, or choose another --out.")
    runner = make_executor(executor, workers=workers, scheduler=scheduler)
    if not runner.remote:  # a remote cluster's workers have their own copies
        _check_data(sweep.points)
    counts = {"converged": 0, "not_converged": 0, "diverged": 0, "error": 0}
    start = time.monotonic()
    with ResultsWriter(out) as writer:
        done_keys, retried_keys = writer.drop_failed({p.key for p in sweep.points})
        retried = len(retried_keys)
        todo = [p for p in sweep.points if p.key not in done_keys]
        skipped = len(sweep.points) - len(todo)
        writer.set_attrs({"sweep_name": sweep.name, "sweep_toml": sweep.text or "",
                          "sweep_points": len(sweep.points)})
        bar = _Bar(len(todo), skipped, counts, enabled=progress, label=runner.describe())
        stored = 0
        records = runner.run(todo, sweep.store_weights)
        # Ctrl-C raises KeyboardInterrupt, but one that lands inside a finaliser or weakref
        # callback is printed and dropped by Python: the flag makes sure it still counts
        interrupted = []
        restore = _catch_sigint(interrupted)
        try:
            for record in records:
                writer.add(record)
                stored += 1
                status = record["summary"]["status"]
                counts[status] = counts.get(status, 0) + 1
                bar.update()
                if interrupted:
                    raise KeyboardInterrupt
            if interrupted:
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            # counted from the file: a run being stored when Ctrl-C came is stored first
            stored = len(writer.keys() & {p.key for p in todo})
            raise SweepInterrupted(
                f"interrupted: {stored} finished runs of this session are stored in {out} "
                f"({skipped + stored} of {len(sweep.points)} points done); rerun the same "
                "command with --resume to run the remaining "
                f"{len(todo) - stored}.", stored, len(todo) - stored) from None
        finally:
            restore()
            records.close()  # stops the workers now, also on Ctrl-C
            bar.close()
    return {"out": str(out), "points": len(sweep.points), "skipped": skipped, "run": stored,
            "retried": retried, "counts": counts, "seconds": time.monotonic() - start,
            "executor": runner.describe()}


def _catch_sigint(flag: list):
    """Install a SIGINT handler that records the signal and raises KeyboardInterrupt;
    returns the function that restores the previous handler."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        flag.append(signum)
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, old)


class _Bar:
    """tqdm over runs with an ETA and live counts per status (stderr; off when disabled)."""

    def __init__(self, total, skipped, counts, enabled, label):
        self.counts = counts
        self.bar = None
        if enabled and total:
            import sys
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=f"sweep [{label}]", unit="run", file=sys.stderr,
                            dynamic_ncols=True, smoothing=0.1)
            if skipped:
                self.bar.write(f"resuming: {skipped} points already stored, {total} to run",
                               file=sys.stderr)

    def update(self):
        if self.bar is not None:
            c = self.counts
            self.bar.set_postfix_str(f"conv {c['converged']} | not {c['not_converged']} | "
                                     f"div {c['diverged']} | err {c['error']}", refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

"""HDF5 results: one group per run under ``/runs``, each with its full configuration, package
version, seed, status, curves, final metrics, write-count maps and (optionally) final weights.

Files are written with ``libver=('v110', 'v110')`` so HDF5 1.x tools (``h5dump``) read them.
A lock file (``FILE.h5.lock``) refuses a second writer. The file is never modified in place:
finished runs go to a journal first and are merged into a copy that replaces the file
atomically (:mod:`neuroenergy.journal`), so a process killed at any moment leaves a file that
opens and, with its journal, holds every finished run. Readers list the journal's runs too;
the next writer merges them.
"""
from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import __version__
from .errors import StoreError
from .journal import (FORMAT_VERSION, LIBVER, check_version, drop_runs, existing, h5py,  # noqa: F401
                      journal_dir, merge_pending, recover, updating, write_pending)

COMPRESS_ABOVE_BYTES = 1 << 16
#: a long-lived writer merges at most every MERGE_COST_FACTOR times its last merge's duration
MERGE_COST_FACTOR = 10.0
STATUS_ERROR = "error"


@contextmanager
def deferred_interrupts(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold SIGINT / SIGTERM back until the block ends, then deliver them (to the handlers
    in place before). Outside the main thread the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received, old = [], {}
    for signum in signums:
        old[signum] = signal.signal(signum, lambda sig, frame: received.append(sig))
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


# ----------------------------------------------------------------------------- records

def new_run_id(config_dict: dict, key=None) -> str:
    """A readable group name: rule, size, seed and the sweep key (or a random suffix)."""
    rule = config_dict["rule"]["name"]
    suffix = key[:10] if key else uuid.uuid4().hex[:8]
    hidden = config_dict["hidden"]
    if isinstance(hidden, (list, tuple)):  # several hidden layers: h300x100
        hidden = "x".join(str(h) for h in hidden)
    return f"{rule}_h{hidden}_s{config_dict['seed']}_{suffix}"


def _weight_names(n_layers: int) -> list:
    """'w_in', ('w_hidden1', ...), 'w_out': the stored names of the weight matrices."""
    from .energy import layer_names
    return ["w_in" if n == "input" else "w_out" if n == "output" else f"w_{n}"
            for n in layer_names(n_layers)]


def record_from_result(result, store_weights=True, key=None, run_id=None) -> dict:
    """What the store writes for one :class:`~neuroenergy.train.Result`: a picklable dict of
    the JSON summary and named arrays (what sweep workers send back to the writer)."""
    summary = result.to_dict()
    arrays = {f"curves/{name}": np.asarray(v) for name, v in result.curves.items()}
    from .energy import layer_names
    for name, counts in zip(layer_names(len(result.write_counts)), result.write_counts):
        arrays[f"write_counts/{name}"] = np.asarray(counts)
    arrays["plastic_units"] = np.asarray(result.plastic_units, np.int64)
    group_attrs = {}
    if store_weights:
        weights = getattr(result.network, "weights",
                          [result.network.w_in, result.network.w_out])
        for name, w in zip(_weight_names(len(weights)), weights):
            arrays[f"weights/{name}"] = w
        group_attrs["weights"] = {"activation": result.network.activation,
                                  "leak": float(result.network.leak)}
    return {"run_id": run_id or new_run_id(summary["config"], key), "key": key,
            "summary": summary, "arrays": arrays, "group_attrs": group_attrs}


def error_record(config_dict: dict, message: str, key=None, traceback_text="") -> dict:
    """A run that failed: stored with status 'error' and the message, no arrays."""
    summary = {"rule": config_dict["rule"]["name"],
               "rule_params": {k: v for k, v in config_dict["rule"].items() if k != "name"},
               "hidden": config_dict["hidden"], "seed": config_dict["seed"],
               "status": STATUS_ERROR, "converged": False, "error": message,
               "traceback": traceback_text, "energy": {}, "hardware": {},
               "config": config_dict, "version": __version__}
    return {"run_id": new_run_id(config_dict, key), "key": key, "summary": summary,
            "arrays": {}, "group_attrs": {}}


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dataset(group, name, array):
    array = np.asarray(array)
    kwargs = {}
    if array.nbytes > COMPRESS_ABOVE_BYTES and array.ndim > 0:
        kwargs = dict(compression="gzip", compression_opts=4, shuffle=True)
    group.create_dataset(name, data=array, dtype=array.dtype, **kwargs)


def _write_attrs(group, d):
    """Numbers and nested dicts of numbers as attributes (readable by any HDF5 tool)."""
    for key, value in d.items():
        if isinstance(value, dict):
            _write_attrs(group.require_group(key), value)
        elif value is None:
            group.attrs[key] = "none"
        elif isinstance(value, (list, tuple)):
            group.attrs[key] = json.dumps(value, default=_json_default)
        else:
            group.attrs[key] = value


def _write_record(runs, record) -> None:
    summary = record["summary"]
    g = runs.create_group(record["run_id"])
    g.attrs["config_json"] = json.dumps(summary["config"], default=_json_default)
    g.attrs["summary_json"] = json.dumps(summary, default=_json_default)
    for name in ("version", "seed", "rule", "hidden", "status"):
        g.attrs[name] = summary[name]
    if record.get("key"):
        g.attrs["key"] = record["key"]
    if summary["status"] == STATUS_ERROR:
        g.attrs["error"] = summary.get("error", "")
        return
    _write_attrs(g.require_group("metrics"), {k: summary[k] for k in (
        "epochs", "samples", "test_accuracy", "train_seconds")})
    _write_attrs(g.require_group("energy"), summary["energy"])
    if summary.get("hardware"):
        g.attrs["hardware_json"] = json.dumps(summary["hardware"], default=_json_default)
    for name, array in record["arrays"].items():
        parent, _, leaf = name.rpartition("/")
        _dataset(g.require_group(parent) if parent else g, leaf, array)
    for name, attrs in record.get("group_attrs", {}).items():
        g.require_group(name).attrs.update(attrs)


class ResultsWriter:
    """The one writer of a results file: holds its lock, recovers it on entry, journals each
    added run at once and merges the journal into the file (see the module notes)."""

    def __init__(self, path, min_merge_interval_s: float = 0.0):
        self.path = Path(path)
        self.min_merge_interval_s = min_merge_interval_s
        self._lock = None
        self._last_merge_end = 0.0
        self._last_merge_cost = 0.0

    def __enter__(self):
        from filelock import FileLock, Timeout
        path = self.path
        if not path.parent.exists():
            raise StoreError(f"cannot write {path}: folder {path.parent} does not exist.")
        if path.is_dir():
            raise StoreError(f"cannot write {path}: it is a folder, not an HDF5 file.")
        self._lock = FileLock(str(path) + ".lock")
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise StoreError(f"{path} is being written by another process (lock {path}.lock);"
                             " wait for it to finish or write to another file.") from None
        try:
            if path.exists():
                self._check_readable()
            recover(path)
            self._last_merge_end = time.monotonic()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _check_readable(self):
        try:
            with h5py().File(self.path, "r") as f:
                check_version(f, self.path)
        except OSError as exc:
            raise StoreError(f"cannot add runs to {self.path}: {exc}. Is it an HDF5 results "
                             "file?") from exc

    def keys(self) -> set:
        """Sweep keys of every run stored so far (file and journal)."""
        return {s["key"] for s in read_runs(self.path) if s.get("key")}

    def drop_failed(self, keys: set) -> tuple:
        """Delete the failed runs (status 'error') of these sweep keys that have no other
        stored run, so that those points are missing and run again (a failure is no
        result; its message was reported when it was stored). Returns (the sweep keys
        stored after that, the keys dropped), from one read of the file."""
        runs = read_runs(self.path)
        ok = {s["key"] for s in runs if s.get("key") and s.get("status") != STATUS_ERROR}
        failed = [s for s in runs if s.get("status") == STATUS_ERROR
                  and s.get("key") in keys and s["key"] not in ok]
        if failed:
            self.merge()  # a pending failed run is in the journal until merged
            drop_runs(self.path, [s["run_id"] for s in failed])
        dropped = {s["key"] for s in failed}
        return {s["key"] for s in runs if s.get("key")} - dropped, dropped

    def add(self, record, merge=None) -> str:
        """Store one record (see :func:`record_from_result`); returns its run id. Ctrl-C
        while the run goes to the journal takes effect once it is there (a finished run is
        never lost to it); the merge may be interrupted (the journal keeps the run)."""
        with deferred_interrupts():
            write_pending(self.path, record["run_id"], lambda runs: _write_record(runs, record))
        due = time.monotonic() - self._last_merge_end >= max(
            self.min_merge_interval_s, MERGE_COST_FACTOR * self._last_merge_cost)
        if merge or (merge is None and due):
            self.merge()
        return record["run_id"]

    def set_attrs(self, attrs: dict) -> None:
        """File-level attributes (e.g. the sweep specification), written at once."""
        merge_pending(self.path, file_attrs=attrs)

    def merge(self) -> None:
        start = time.monotonic()
        merge_pending(self.path)
        self._last_merge_end = time.monotonic()
        self._last_merge_cost = self._last_merge_end - start

    def __exit__(self, exc_type, exc, tb):
        try:
            self.merge()
        except StoreError:
            if exc_type is None:
                raise
        finally:
            self._lock.release()
        return False


# ----------------------------------------------------------------------------- writing API

def write_run(path, result, run_id=None, store_weights=True, key=None) -> str:
    """Append one :class:`~neuroenergy.train.Result` (or a record from
    :func:`record_from_result` / :func:`error_record`) to ``path``; returns its run id.

    ``key`` is an optional identity string (e.g. a sweep point's hash) stored as an attribute
    so resumable sweeps can tell which runs exist.
    """
    if isinstance(result, dict):
        record = dict(result)
        record["run_id"] = run_id or record["run_id"]
        record["key"] = key or record.get("key")
    else:
        record = record_from_result(result, store_weights, key, run_id)
    with ResultsWriter(path) as writer:
        ids, keys = _existing_in(path)
        if record["run_id"] in ids:
            raise StoreError(f"{path} already holds a run named {record['run_id']!r}.")
        if record["key"] and record["key"] in keys:
            raise StoreError(f"{path} already holds a run with key {record['key']!r}.")
        writer.add(record, merge=True)
    return record["run_id"]


def _existing_in(path) -> tuple:
    if not Path(path).exists():
        return set(), set()
    with open_for_reading(path) as f:
        return existing(f["runs"]) if "runs" in f else (set(), set())


@contextmanager
def open_for_writing(path):
    """Hold the lock and yield an h5py file to modify; the changes replace ``path``
    atomically when the block ends without an error (nothing changes otherwise)."""
    with ResultsWriter(path) as writer, updating(writer.path) as f:
        yield f


def write_extra(path, group: str, arrays: dict, attrs: dict) -> None:
    """Store extra results (e.g. ``runs/<id>/spiking/convert``), replacing an older copy."""
    with open_for_writing(path) as f:
        if group in f:
            del f[group]
        g = f.require_group(group)
        for name, value in arrays.items():
            _dataset(g, name, np.asarray(value))
        for key, value in attrs.items():
            g.attrs[key] = value if not isinstance(value, (dict, list, tuple)) else \
                json.dumps(value, default=_json_default)


# ----------------------------------------------------------------------------- reading API

@contextmanager
def open_for_reading(path):
    """The results file, read-only (the runs still in the journal are not in it)."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"results file {path} does not exist.")
    try:
        f = h5py().File(path, "r")
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {_why_unreadable(path, exc)}") from exc
    try:
        check_version(f, path, verb="read")
        yield f
    finally:
        f.close()


def _why_unreadable(path, exc) -> str:
    """Why HDF5 cannot open ``path``, in words (truncated, not HDF5, ...)."""
    import re
    text = str(exc)
    cut = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text)
    if cut:
        return (f"it is truncated: {int(cut.group(1)):,} of its {int(cut.group(2)):,} bytes "
                "are there (a copy or transfer cut short?), and HDF5 cannot open a truncated "
                "file, so none of its runs can be read. neuroenergy never truncates a file it "
                "writes (runs are merged by atomic rename): restore the file from its source.")
    if "signature" in text or Path(path).stat().st_size == 0:
        return "it is not an HDF5 file (no HDF5 signature); give a results file."
    return f"{text} (not an HDF5 file, or damaged)."


def _sources(path):
    """The results file, then each journal file not yet merged (oldest first)."""
    yield Path(path)
    folder = journal_dir(path)
    if folder.is_dir():
        yield from sorted(folder.glob("*.h5"))


def _summary_of(g, run_id) -> dict:
    try:
        summary = json.loads(g.attrs["summary_json"])
    except (KeyError, ValueError) as exc:
        return {"run_id": run_id, "status": "unreadable",
                "error": f"missing or corrupt summary ({exc})"}
    summary["run_id"] = run_id
    if "key" in g.attrs:
        summary["key"] = str(g.attrs["key"])
    return summary


def read_runs(path) -> list:
    """Summaries of every stored run: the dict of ``Result.to_dict()`` plus ``run_id`` and
    ``key`` (for error runs: status 'error' and ``error``), including finished runs still in
    the journal. Runs whose summary cannot be read are listed with status 'unreadable'."""
    out, seen = [], set()
    for source in _sources(path):
        try:
            with open_for_reading(source) as f:
                runs = f.get("runs")
                for run_id in (runs if runs is not None else []):
                    if run_id in seen or run_id.startswith(".incomplete_"):
                        continue  # a journal file merged while we read
                    seen.add(run_id)
                    summary = _summary_of(runs[run_id], run_id)
                    if source != Path(path):
                        summary["pending"] = True
                    out.append(summary)
        except StoreError as exc:
            if source == Path(path):
                raise
            if source.exists():  # a journal file that cannot be read: say so
                out.append({"run_id": source.stem, "status": "unreadable", "pending": True,
                            "error": f"journal file unreadable: {exc}"})
    return out


def _run_names(path) -> list:
    """Names of the runs in the file and its journal (cheap: no summaries parsed)."""
    names = []
    for source in _sources(path):
        try:
            with open_for_reading(source) as f:
                names += [n for n in f.get("runs", {}) if n not in names]
        except StoreError:
            if source == Path(path):
                raise
    return names


@contextmanager
def _open_run(path, run_id):
    """The group of one run (``run_id`` may be omitted if the file holds one)."""
    if run_id is None:
        names = _run_names(path)
        if len(names) != 1:
            raise StoreError(f"{path} holds no runs." if not names else
                             f"{path} holds {len(names)} runs; choose one with --run "
                             f"(e.g. {names[0]}).")
        run_id = names[0]
    for source in _sources(path):
        try:
            with open_for_reading(source) as f:
                if run_id in f.get("runs", {}):
                    yield f["runs"][run_id], run_id
                    return
        except StoreError:
            if source == Path(path):
                raise
    names = _run_names(path)
    raise StoreError(f"{path} has no run {run_id!r}; it holds {', '.join(names[:10])}"
                     f"{' ...' if len(names) > 10 else ''}.")


def load_network(path, run_id=None):
    """The final network of a stored run (``run_id`` may be omitted if the file holds one)."""
    from .network import Network
    with _open_run(path, run_id) as (g, run_id):
        if "weights" not in g:
            raise StoreError(f"run {run_id!r} in {path} was stored without weights.")
        w = g["weights"]
        n_layers = len([k for k in w if k.startswith("w_")])
        missing = [n for n in _weight_names(max(n_layers, 2)) if n not in w] + \
            [a for a in ("activation", "leak") if a not in w.attrs]
        if missing:
            raise StoreError(f"run {run_id!r} in {path} has incomplete weights: "
                             f"{', '.join(missing)} missing.")
        if "w_hidden1" in w:  # several hidden layers
            from .general_train import LayeredNetwork
            return LayeredNetwork([w[n][()] for n in _weight_names(n_layers)],
                                  str(w.attrs["activation"]), float(w.attrs["leak"]))
        return Network(w["w_in"][()], w["w_out"][()], str(w.attrs["activation"]),
                       float(w.attrs["leak"]))


# entries every finished run has in these groups (deeper networks have more)
_EXPECTED_ENTRIES = {"write_counts": ("input", "output"), "curves": ("samples", "accuracy")}


def load_run(path, run_id=None, parts=("curves", "write_counts", "plastic_units")) -> dict:
    """The summary of one run plus the stored arrays named in ``parts`` (groups become
    dicts of arrays); error runs have no arrays. Parts of a finished run that are missing or
    cannot be read are left out and named in ``summary['missing']`` with the reason."""
    with _open_run(path, run_id) as (g, run_id):
        summary = _summary_of(g, run_id)
        missing = {}
        for part in parts:
            if part not in g:
                if summary.get("status") not in (STATUS_ERROR, "unreadable"):
                    missing[part] = "not stored"
                continue
            try:
                node = g[part]
                summary[part] = ({k: node[k][()] for k in node}
                                 if hasattr(node, "keys") else node[()])
            except (OSError, KeyError, RuntimeError) as exc:  # damaged data in the file
                missing[part] = f"unreadable ({exc})"
                continue
            lost = [k for k in _EXPECTED_ENTRIES.get(part, ()) if k not in summary[part]]
            if lost:
                missing[part] = f"incomplete: {', '.join(lost)} missing"
        if missing:
            summary["missing"] = missing
        return summary

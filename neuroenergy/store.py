"""HDF5 results: one group per run under ``/runs``, each with its full configuration, package
version, seed, curves, final metrics, write-count maps and final weights.

Files are written with ``libver=('v110', 'v110')`` so HDF5 1.x tools (``h5dump``) read them.
A lock file (``FILE.h5.lock``) refuses a second writer. Each run is written and the file
closed before the next, so an interrupted program loses at most the run being written.
"""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import __version__
from .errors import StoreError

FORMAT_VERSION = 1
LIBVER = ("v110", "v110")
COMPRESS_ABOVE_BYTES = 1 << 16


def _h5py():
    import h5py
    return h5py


@contextmanager
def open_for_writing(path):
    """Open (or create) a results file for writing, holding its lock; clear errors."""
    from filelock import FileLock, Timeout
    h5py = _h5py()
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise StoreError(f"cannot write {path}: folder {path.parent} does not exist.")
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StoreError(f"{path} is being written by another process (lock {path}.lock); "
                         "wait for it to finish or write to another file.") from None
    try:
        try:
            f = h5py.File(path, "a", libver=LIBVER)
        except OSError as exc:
            raise StoreError(f"cannot open {path} for writing: {exc}. Is it an HDF5 file?") from exc
        try:
            version = int(f.attrs.get("format_version", FORMAT_VERSION))
            if version > FORMAT_VERSION:
                raise StoreError(f"{path} was written by a newer neuroenergy (format "
                                 f"{version} > {FORMAT_VERSION}); upgrade to add runs to it.")
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs.setdefault("created_by", f"neuroenergy {__version__}")
            f.require_group("runs")
            yield f
        finally:
            f.close()
    finally:
        lock.release()


def _dataset(group, name, array):
    array = np.asarray(array)
    kwargs = {}
    if array.nbytes > COMPRESS_ABOVE_BYTES and array.ndim > 0:
        kwargs = dict(compression="gzip", compression_opts=4, shuffle=True)
    group.create_dataset(name, data=array, dtype=array.dtype, **kwargs)


def _write_dict(group, d):
    """Numbers and nested dicts of numbers as attributes (readable by any HDF5 tool)."""
    for key, value in d.items():
        if isinstance(value, dict):
            _write_dict(group.require_group(key), value)
        elif value is None:
            group.attrs[key] = "none"
        elif isinstance(value, (list, tuple)):
            group.attrs[key] = json.dumps(value)
        else:
            group.attrs[key] = value


def new_run_id(config_dict: dict) -> str:
    """A readable, unique group name: rule, size, seed and a short random suffix."""
    rule = config_dict["rule"]["name"]
    return f"{rule}_h{config_dict['hidden']}_s{config_dict['seed']}_{uuid.uuid4().hex[:8]}"


def write_run(path, result, run_id=None, store_weights=True, key=None) -> str:
    """Append one :class:`~neuroenergy.train.Result` to ``path``; returns its run id.

    ``key`` is an optional identity string (e.g. a sweep point's hash) stored as an attribute
    so resumable sweeps can tell which runs exist.
    """
    summary = result.to_dict()
    run_id = run_id or new_run_id(summary["config"])
    with open_for_writing(path) as f:
        runs = f["runs"]
        if run_id in runs:
            raise StoreError(f"{path} already holds a run named {run_id!r}.")
        # build under a temporary name and rename when complete: a run either exists whole
        # or not at all
        tmp_name = f".incomplete_{run_id}"
        if tmp_name in runs:
            del runs[tmp_name]
        g = runs.create_group(tmp_name)
        g.attrs["config_json"] = json.dumps(summary["config"])
        g.attrs["summary_json"] = json.dumps(summary, default=_json_default)
        g.attrs["version"] = summary["version"]
        g.attrs["seed"] = summary["seed"]
        g.attrs["rule"] = summary["rule"]
        g.attrs["hidden"] = summary["hidden"]
        g.attrs["status"] = summary["status"]
        if key is not None:
            g.attrs["key"] = key
        metrics = {k: summary[k] for k in ("epochs", "samples", "test_accuracy",
                                           "train_seconds")}
        _write_dict(g.require_group("metrics"), metrics)
        _write_dict(g.require_group("energy"), summary["energy"])
        if summary["hardware"]:
            g.attrs["hardware_json"] = json.dumps(summary["hardware"], default=_json_default)
        curves = g.require_group("curves")
        for name, values in result.curves.items():
            _dataset(curves, name, np.asarray(values))
        counts = g.require_group("write_counts")
        _dataset(counts, "input", result.write_counts[0])
        _dataset(counts, "output", result.write_counts[1])
        _dataset(g, "plastic_units", np.asarray(result.plastic_units, np.int64))
        if store_weights:
            w = g.require_group("weights")
            _dataset(w, "w_in", result.network.w_in)
            _dataset(w, "w_out", result.network.w_out)
            w.attrs["activation"] = result.network.activation
            w.attrs["leak"] = result.network.leak
        runs.move(tmp_name, run_id)
        f.flush()
    return run_id


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


@contextmanager
def open_for_reading(path):
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise StoreError(f"results file {path} does not exist.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc} (not an HDF5 file, or truncated).") from exc
    try:
        version = int(f.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise StoreError(f"{path} was written by a newer neuroenergy (format {version} > "
                             f"{FORMAT_VERSION}); upgrade neuroenergy to read it.")
        yield f
    finally:
        f.close()


def read_runs(path) -> list:
    """Summaries of every complete run: the dict of ``Result.to_dict()`` plus ``run_id``.
    Runs whose summary cannot be read are listed with status 'unreadable' and the reason."""
    out = []
    with open_for_reading(path) as f:
        runs = f.get("runs")
        if runs is None:
            return out
        for run_id in runs:
            if run_id.startswith(".incomplete_"):
                continue
            g = runs[run_id]
            try:
                summary = json.loads(g.attrs["summary_json"])
            except (KeyError, ValueError) as exc:
                out.append({"run_id": run_id, "status": "unreadable",
                            "error": f"missing or corrupt summary ({exc})"})
                continue
            summary["run_id"] = run_id
            if "key" in g.attrs:
                summary["key"] = str(g.attrs["key"])
            out.append(summary)
    return out


def _pick_run(f, path, run_id):
    runs = f.get("runs")
    names = [] if runs is None else [n for n in runs if not n.startswith(".incomplete_")]
    if not names:
        raise StoreError(f"{path} holds no runs.")
    if run_id is None:
        if len(names) > 1:
            raise StoreError(f"{path} holds {len(names)} runs; choose one with --run "
                             f"(e.g. {names[0]}).")
        run_id = names[0]
    if run_id not in names:
        raise StoreError(f"{path} has no run {run_id!r}; it holds {', '.join(names[:10])}.")
    return runs[run_id], run_id


def load_network(path, run_id=None):
    """The final network of a stored run (``run_id`` may be omitted if the file holds one)."""
    from .network import Network
    with open_for_reading(path) as f:
        g, run_id = _pick_run(f, path, run_id)
        if "weights" not in g:
            raise StoreError(f"run {run_id!r} in {path} was stored without weights.")
        w = g["weights"]
        return Network(w["w_in"][()], w["w_out"][()], str(w.attrs["activation"]),
                       float(w.attrs["leak"]))


def load_run(path, run_id=None) -> dict:
    """Everything stored for one run: summary, curves, write counts (arrays)."""
    with open_for_reading(path) as f:
        g, run_id = _pick_run(f, path, run_id)
        summary = json.loads(g.attrs["summary_json"])
        summary["run_id"] = run_id
        summary["curves"] = {k: g["curves"][k][()] for k in g["curves"]}
        summary["write_counts"] = {k: g["write_counts"][k][()] for k in g["write_counts"]}
        summary["plastic_units"] = g["plastic_units"][()]
        return summary


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

"""Crash-safe updates of an HDF5 results file (the mechanics behind :mod:`neuroenergy.store`).

HDF5 updates metadata in place, so a process killed in the middle of a write can leave a file
that no longer opens. A results file ``FILE.h5`` is therefore never modified in place:

1. each finished run is first written whole to its own small file in the journal folder
   ``FILE.h5.journal/`` (built as ``RUN.h5.tmp``, then renamed with :func:`os.replace`);
2. merging copies ``FILE.h5`` to ``FILE.h5.tmp-merge``, adds the journal's runs to the copy,
   and renames the copy over ``FILE.h5``; only then are the journal files deleted.

A rename is atomic, so at every instant ``FILE.h5`` is a complete file and every finished run
is in it or in the journal. :func:`recover` (run by the next writer) deletes leftover
``*.tmp`` files and merges the journal; a run already in the file (same run id or same sweep
key) is never added twice, so a crash between the rename and the clean-up does no harm.
"""
from __future__ import annotations

import os
import shutil
import signal
import warnings
from contextlib import contextmanager
from pathlib import Path

from . import __version__
from .errors import StoreError

FORMAT_VERSION = 1
LIBVER = ("v110", "v110")  # HDF5 1.10 format: Debian's h5dump and SWMR read it
JOURNAL_SUFFIX = ".journal"
MERGE_SUFFIX = ".tmp-merge"
#: test hook: ``NEUROENERGY_STORE_FAULT=<point>`` SIGKILLs the process at that point
FAULT_ENV = "NEUROENERGY_STORE_FAULT"
FAULT_POINTS = ("pending_written", "merged_before_replace", "before_replace",
                "replaced_before_cleanup")
_SPACE_ERRNOS = (27, 28, 122)  # EFBIG, ENOSPC, EDQUOT
SPACE_MARGIN_BYTES = 1 << 20


def h5py():
    import h5py as _h5py
    return _h5py


def fault(point: str) -> None:
    """Kill this process with SIGKILL if the fault-injection variable names ``point``."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def journal_dir(path) -> Path:
    return Path(str(path) + JOURNAL_SUFFIX)


def init_root(f) -> None:
    f.attrs["format_version"] = FORMAT_VERSION
    if "created_by" not in f.attrs:
        f.attrs["created_by"] = f"neuroenergy {__version__}"
    f.require_group("runs")


def check_version(f, path, verb="add runs to") -> None:
    version = int(f.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise StoreError(f"{path} was written by a newer neuroenergy (format {version} > "
                         f"{FORMAT_VERSION}); upgrade neuroenergy to {verb} it.")


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(exc) -> str:
    """'the disk is full' for out-of-space errors (h5py hides errno in its message)."""
    text = str(exc)
    if getattr(exc, "errno", None) in _SPACE_ERRNOS or any(
            s in text for s in ("No space left", "errno = 28", "File too large", "errno = 27",
                                "Disk quota")):
        return "the disk is full (no space left on the device)"
    return text


def _check_space(path: Path, extra_bytes: int) -> None:
    """Refuse before writing if the copy cannot fit: HDF5 copes badly with a full disk."""
    size = path.stat().st_size if path.exists() else 0
    need = size + extra_bytes + SPACE_MARGIN_BYTES
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise OSError(28, f"No space left: {free} bytes free, about {need} needed")


@contextmanager
def updating(path: Path, extra_bytes: int = 0):
    """Yield a writable h5py copy of ``path``; rename it over ``path`` when the block ends
    without an error. On any error ``path`` is untouched. ``extra_bytes``: about how much
    the block adds (checked against the free space first)."""
    path = Path(path)
    tmp = path.with_name(path.name + MERGE_SUFFIX)
    try:
        _check_space(path, extra_bytes)
        if path.exists():
            shutil.copyfile(path, tmp)
        f = h5py().File(tmp, "a" if path.exists() else "w", libver=LIBVER)
        try:
            check_version(f, path)
            init_root(f)
            yield f
        finally:
            f.close()
        _fsync(tmp)
        fault("before_replace")
        os.replace(tmp, path)
        _fsync(path.parent)
    except (OSError, RuntimeError) as exc:  # h5py reports some write failures as RuntimeError
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {_reason(exc)}. The file is unchanged and "
                         "readable; finished runs not yet in it wait in "
                         f"{journal_dir(path)}. Free space and rerun with --resume.") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_pending(path, run_id: str, write) -> Path:
    """Write one run to the journal with ``write(runs_group)`` (whole file, atomic rename).

    The HDF5 file is built in memory and written with plain file I/O, so a full disk is an
    ordinary OSError and never leaves HDF5 in a half-written state."""
    folder = journal_dir(path)
    final = folder / f"{run_id}.h5"
    tmp = folder / f"{run_id}.h5.tmp"
    with h5py().File(f"{run_id}.h5", "w", driver="core", backing_store=False,
                     libver=LIBVER) as f:
        init_root(f)
        write(f["runs"])
        f.flush()
        image = f.id.get_file_image()
    try:
        folder.mkdir(exist_ok=True)
        with open(tmp, "wb") as out:
            out.write(image)
            out.flush()
            os.fsync(out.fileno())
        fault("pending_written")
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot store run {run_id} in {folder}: {_reason(exc)}. {path} is "
                         "unchanged and readable; free space and rerun with --resume.") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def existing(runs) -> tuple:
    """(run ids, sweep keys) of the runs in an open ``/runs`` group."""
    keys = set()
    for name in runs:
        key = runs[name].attrs.get("key")
        if key is not None:
            keys.add(str(key))
    return set(runs), keys


def pending_files(path) -> list:
    folder = journal_dir(path)
    return sorted(folder.glob("*.h5")) if folder.is_dir() else []


def merge_pending(path, file_attrs=None) -> int:
    """Move every journal run into the results file; returns how many were added."""
    path = Path(path)
    pending = pending_files(path)
    if not pending and path.exists() and not file_attrs:
        return 0
    added = 0
    with updating(path, sum(p.stat().st_size for p in pending)) as f:
        f.attrs.update(file_attrs or {})
        ids, keys = existing(f["runs"])
        for file in list(pending):
            try:
                src = h5py().File(file, "r")
            except OSError:  # cannot happen after an atomic rename, unless the disk failed
                pending.remove(file)
                os.replace(file, file.with_suffix(".unreadable"))
                warnings.warn(f"journal file {file} is unreadable; kept as "
                              f"{file.with_suffix('.unreadable')}")
                continue
            with src:
                for run_id in src["runs"]:
                    g = src["runs"][run_id]
                    key = g.attrs.get("key")
                    if run_id in ids or (key is not None and str(key) in keys):
                        continue  # merged before a crash: never a duplicate
                    src.copy(g, f["runs"], name=run_id)
                    ids.add(run_id)
                    if key is not None:
                        keys.add(str(key))
                    added += 1
        fault("merged_before_replace")
    fault("replaced_before_cleanup")
    for file in pending:
        file.unlink(missing_ok=True)
    _remove_if_empty(journal_dir(path))
    return added


def drop_runs(path, run_ids) -> int:
    """Delete the runs ``run_ids`` from the results file (hold the lock, after
    :func:`recover`: no journal file then holds them); returns how many were there."""
    with updating(path) as f:
        runs = f["runs"]
        gone = [run_id for run_id in run_ids if run_id in runs]
        for run_id in gone:
            del runs[run_id]
    return len(gone)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # missing, or not empty
        pass


def recover(path) -> int:
    """Delete what an interrupted write left and merge the journal (hold the lock first).
    Creates an empty results file if there is none. Returns the number of runs merged."""
    path = Path(path)
    path.with_name(path.name + MERGE_SUFFIX).unlink(missing_ok=True)
    folder = journal_dir(path)
    if folder.is_dir():
        for tmp in folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
    n = merge_pending(path)
    _remove_if_empty(folder)
    return n

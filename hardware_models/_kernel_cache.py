"""Keep numba's on-disk cache of a compiled function in step with the code it embeds.

numba checks only the source file of a cached function, but a compiled function embeds the
functions it calls or inlines from other modules. When one of those files changes
(``hardware_models/tally.py`` inlined into ``tally_rows``, ``kernels.py`` and ``topk.py``
linked into the training kernels...), a cached function would silently keep running the
old code. :func:`refresh` hashes the files and drops the cache files of the named modules
when the hash changes (before the first call compiles or loads anything). Each compiled
layer keeps a stamp: ``tally_rows`` (the tallies it inlines), ``neuroenergy.sgd_kernel``
and ``neuroenergy.general_kernel`` (the kernels and everything they link),
``neuroenergy.spiking.learn_hardware``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path


def _digest(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        h.update(p.encode())
        try:
            h.update(Path(p).read_bytes())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def _modules_beside(dispatcher, dependency_files) -> tuple:
    """Cache-file prefixes ("name.") of the dependency files in the folder of the
    dispatcher's own source: numba keeps their cached functions in its cache folder."""
    here = Path(dispatcher.py_func.__code__.co_filename).resolve().parent
    return tuple(sorted({Path(f).stem + "." for f in dependency_files
                         if Path(f).resolve().parent == here}))


def refresh(dispatcher, dependency_files, stamp_name, cache_prefixes=None) -> bool:
    """Drop the cached files whose names start with ``cache_prefixes`` from the cache folder
    of ``dispatcher`` if ``dependency_files`` changed since the stamp ``stamp_name`` was
    written there; returns True if files were dropped. By default the prefixes are those of
    the dependency files beside the dispatcher's source (list its own file among them):
    their cached functions embed each other's code. Never raises (a cache is an
    optimisation)."""
    try:
        if cache_prefixes is None:
            cache_prefixes = _modules_beside(dispatcher, dependency_files)
        cache_dir = Path(dispatcher._cache._cache_path)
        digest = _digest(dependency_files)
        stamp = cache_dir / stamp_name
        if stamp.exists() and stamp.read_text().strip() == digest:
            return False
        dropped = False
        for f in cache_dir.iterdir():
            if f.name.startswith(cache_prefixes) and f.suffix in (".nbi", ".nbc"):
                f.unlink(missing_ok=True)
                dropped = True
        stamp.write_text(digest)
        return dropped
    except Exception:  # noqa: BLE001 - unwritable cache folder, private numba API changed...
        return False

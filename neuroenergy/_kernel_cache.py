"""Keep numba's on-disk cache of a kernel in step with the code it calls.

numba checks only the source file of a cached function, but a compiled function embeds the
functions it calls from other modules. When one of those files changes (``kernels.py``,
``topk.py``, ``hardware_models/tally.py``...), a cached kernel would silently keep running
the old code. :func:`refresh` hashes the files and drops the kernel's cache files when the
hash changes (before the first call compiles or loads anything); the SGD kernels
(``sgd_kernel``) and the general kernel (``general_kernel``) each keep a stamp.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

STAMP_NAME = "general_kernel.deps.sha256"
CACHE_PREFIXES = ("general_kernel.", "general_writes.")


def _digest(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        h.update(p.encode())
        try:
            h.update(Path(p).read_bytes())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def refresh(dispatcher, dependency_files, stamp_name=STAMP_NAME,
            cache_prefixes=CACHE_PREFIXES) -> bool:
    """Drop the cached files whose names start with ``cache_prefixes`` from the cache folder
    of ``dispatcher`` if ``dependency_files`` changed since the stamp ``stamp_name`` was
    written (by default the general kernel's); returns True if files were dropped. Never
    raises (a cache is an optimisation)."""
    try:
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

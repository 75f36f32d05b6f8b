"""Brian2 access for the spiking bridge: the lazy import, the code-generation targets and the
standalone device's life cycle.

This module (and the ``neuroenergy.spiking`` package) is the only place that imports brian2,
always inside a function, so ``import neuroenergy`` works without it.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

from .._validate import check_choice
from ..errors import DependencyError

TARGETS = ("numpy", "cython", "cpp_standalone")
DEFAULT_TARGET = "cython"
INSTALL_HINT = "pip install neuroenergy[brian2]"


def brian():
    """The ``brian2`` module, or a DependencyError that says how to install it."""
    hook = sys.excepthook
    try:
        import brian2
    except ImportError as exc:
        raise DependencyError(
            "The spiking bridge needs Brian2 (brian2 >= 2.9 and cython), which is not "
            f"installed: {INSTALL_HINT}. The rest of neuroenergy works without it."
        ) from exc
    finally:
        # importing brian2 installs an excepthook that reports every later uncaught error
        # as a Brian bug; neuroenergy's own errors are not
        sys.excepthook = hook
    return brian2


def check_target(target: str, owner: str) -> str:
    """Validate a Brian2 target name (one message format)."""
    return check_choice(target, "target", owner, TARGETS)


class Session:
    """One simulation set-up on one target: code-generation preferences, Brian's seed, and,
    for ``cpp_standalone``, the device (built once, re-run with ``run_args``).

    Use as a context manager; on exit the runtime device and the previous preferences come
    back, so sessions on different targets can follow each other in one process.
    """

    def __init__(self, target: str, seed: int, directory=None):
        self.target = check_target(target, "Session")
        self.seed = int(seed)
        self.b2 = brian()
        self._own_dir = directory is None and target == "cpp_standalone"
        self.directory = (tempfile.mkdtemp(prefix="neuroenergy_standalone_")
                          if self._own_dir else directory)
        self.built = False
        self.build_seconds = 0.0  # standalone compilation
        self.setup_seconds = 0.0  # models' construction, code generation and compilation
        self._saved = {}

    @property
    def standalone(self) -> bool:
        return self.target == "cpp_standalone"

    def __enter__(self):
        b2 = self.b2
        prefs = b2.prefs
        self._saved = {"codegen.target": prefs["codegen.target"]}
        # Brian's INFO and "linear equation" hints are noise for the user of this bridge
        b2.BrianLogger.log_level_warn()
        if self.standalone:
            b2.set_device("cpp_standalone", directory=self.directory, build_on_run=False)
            b2.device.reinit()
            b2.device.activate(directory=self.directory, build_on_run=False)
        else:
            prefs["codegen.target"] = self.target
            cache = os.environ.get("NEUROENERGY_CYTHON_CACHE")
            if cache and self.target == "cython":
                prefs["codegen.runtime.cython.cache_dir"] = cache
        b2.seed(self.seed)
        return self

    def __exit__(self, *exc):
        b2 = self.b2
        if self.standalone:
            from brian2.devices.device import reset_device
            b2.device.reinit()
            reset_device()
            if self._own_dir:
                shutil.rmtree(self.directory, ignore_errors=True)
        for key, value in self._saved.items():
            b2.prefs[key] = value
        return False

    def build(self) -> None:
        """Compile the standalone project once (no-op for runtime targets)."""
        if not self.standalone or self.built:
            return
        t0 = time.perf_counter()
        self.b2.device.build(directory=self.directory, compile=True, run=False,
                             with_output=False)
        self.build_seconds = time.perf_counter() - t0
        self.built = True

    def run_standalone(self, run_args: dict) -> None:
        """Run the compiled binary with new values, then drop the value files it wrote."""
        device = self.b2.device
        device.run(directory=self.directory, with_output=False, run_args=run_args)
        static = os.path.join(self.directory, "static_arrays")
        for name in list(device.run_args_arrays):
            for suffix in ("", ".lock"):
                try:
                    os.remove(os.path.join(static, name + suffix))
                except OSError:
                    pass

"""``compiled_only``: functions compiled without Python and C wrappers, for calls from
compiled code only; a call from Python is refused with a clear error instead of a jump to
address 0, and cached code is shared between callers and processes as with njit."""
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from hardware_models.compiled_only import CompiledOnlyDispatcher, compiled_only
from neuroenergy import error_signals, row_tally


@compiled_only()
def _scaled_sum(v, scale):
    total = 0.0
    for x in v:
        total += x * scale
    return total, v.shape[0]


@numba.njit
def _caller(v):
    return _scaled_sum(v, 2.0)


def test_compiled_callers_get_the_python_result():
    v = np.random.default_rng(0).normal(size=17)
    total, n = _caller(v)
    ref_total, ref_n = _scaled_sum.py_func(v, 2.0)
    assert n == ref_n == 17
    assert total == pytest.approx(ref_total, rel=1e-15)
    assert len(_scaled_sum.signatures) == 1


def test_a_call_from_python_is_refused_with_the_function_named():
    with pytest.raises(TypeError, match=r"test_compiled_only\._scaled_sum is compiled for "
                                        r"calls from compiled \(numba\) code only"):
        _scaled_sum(np.ones(3), 1.0)


def test_the_kernels_building_blocks_are_compiled_only():
    assert isinstance(error_signals._errors, CompiledOnlyDispatcher)
    assert isinstance(row_tally.price_rows, CompiledOnlyDispatcher)
    with pytest.raises(TypeError, match="price_rows is compiled for calls from compiled"):
        row_tally.price_rows(np.zeros(8), np.zeros((0, 8)), np.zeros((2, 0, 1)), False)


MODULE = '''
import numba
import numpy as np
from hardware_models.compiled_only import compiled_only

@compiled_only(cache=True)
def shared(v):
    return v.sum() * 3.0

@numba.njit(cache=True)
def first(v):
    return shared(v) + 1.0

@numba.njit(cache=True)
def second(v):
    return shared(v) - 1.0
'''

RUN = '''
import sys
import numpy as np
sys.path.insert(0, {folder!r})
import mod
v = np.arange(5.0)
print(mod.{caller}(v), sum(mod.shared.stats.cache_hits.values()),
      sum(mod.shared.stats.cache_misses.values()))
'''


def test_cached_code_is_shared_between_callers_and_processes(tmp_path):
    """A process compiles ``first`` (and ``shared``, cached); a second process compiles
    ``second``, which loads ``shared`` from the cache and links it; a third loads both."""
    (tmp_path / "mod.py").write_text(textwrap.dedent(MODULE))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run(caller):
        proc = subprocess.run(
            [sys.executable, "-c", RUN.format(folder=str(tmp_path), caller=caller)],
            capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        value, hits, misses = proc.stdout.split()
        return float(value), dict(hits=int(hits), misses=int(misses))

    value, stats = run("first")
    assert value == 31.0 and stats["misses"] and not stats["hits"]
    value, stats = run("second")
    assert value == 29.0 and stats["hits"] and not stats["misses"]
    value, _ = run("first")
    assert value == 31.0


def test_with_the_jit_disabled_the_function_stays_python():
    code = ("from hardware_models.compiled_only import compiled_only\n"
            "def f(x):\n    return x + 1\n"
            "g = compiled_only(cache=True)(f)\n"
            "print(g is f, g(1))\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "2"]

"""``compiled_only``: numba functions that only other compiled functions call.

numba builds two wrappers for every compiled function, one that Python can call (unboxing
every argument, boxing the result) and one with the C calling convention, then optimises
and generates machine code for them with the function. For the kernels' building blocks,
called only from compiled code, that is wasted work: about 1.5 s of a first compilation
of the priced selective kernel (~20 s; two paired sets of six, alternating fresh caches,
``benchmarks/RESULTS.md``). The decorator compiles without both wrappers.

Without a Python wrapper a call from Python would jump to address 0; the dispatcher
refuses such a call with a ``TypeError`` naming the function instead. Calls from compiled
code, typing, caching (``cache=True``) and ``.signatures`` are those of ``numba.njit``.
"""
from numba.core import config
from numba.core.registry import CPUDispatcher


class CompiledOnlyDispatcher(CPUDispatcher):
    """A numba dispatcher compiled without its Python and C wrappers."""

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"{self.py_func.__module__}.{self.py_func.__qualname__} is compiled for calls "
            "from compiled (numba) code only: it has no Python wrapper. Call it from an "
            "@numba.njit function, or call its .py_func (pure Python, slow).")


def compiled_only(**options):
    """``numba.njit(**options)`` without the Python and C wrappers; ``cache=True`` caches
    as njit does, and with ``NUMBA_DISABLE_JIT=1`` the function stays plain Python, as
    njit leaves it."""
    cache = options.pop("cache", False)
    targetoptions = dict(options, nopython=True, no_cpython_wrapper=True,
                         no_cfunc_wrapper=True)

    def wrap(py_func):
        if config.DISABLE_JIT:
            return py_func
        dispatcher = CompiledOnlyDispatcher(py_func=py_func, locals={},
                                            targetoptions=targetoptions)
        if cache:
            dispatcher.enable_caching()
        return dispatcher

    return wrap

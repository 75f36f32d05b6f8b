"""Shared set-up for the benchmarks: one thread everywhere, the data, the study's workloads
built exactly as ``neuroenergy.train`` builds them, and interleaved timing.

Import this module before numpy: it pins BLAS and numba to one thread (the targets are per
core). Times are thread CPU time (``time.thread_time``) unless a table says wall: on a shared
machine that is the honest per-core cost; wall time is reported beside it where it matters.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_var, "1")

import datetime  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_IN = 785


def machine_info() -> dict:
    """CPU model, cores and caches (lscpu), library versions and the date."""
    info = {"date": datetime.date.today().isoformat(), "python": platform.python_version()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "L2 cache", "L3 cache"):
                info[key.strip()] = value.strip()
    except (OSError, subprocess.SubprocessError):
        info["Model name"] = platform.processor() or "unknown"
    import numba
    info["numpy"] = np.__version__
    info["numba"] = numba.__version__
    try:
        info["load average"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        pass
    return info


def load_data(allow_synthetic: bool = True):
    """The preprocessed real MNIST set, or (if it is not cached and ``allow_synthetic``)
    random data of the same shape, flagged by the returned name."""
    from neuroenergy.data import Dataset, load_dataset
    from neuroenergy.errors import DataError
    try:
        return load_dataset("mnist")
    except DataError:
        if not allow_synthetic:
            raise
    rng = np.random.default_rng(0)
    x_train = rng.normal(0, 0.3, (60000, N_IN)).astype(np.float32)
    x_test = rng.normal(0, 0.3, (10000, N_IN)).astype(np.float32)
    return Dataset("synthetic", x_train, rng.integers(0, 10, 60000),
                   x_test, rng.integers(0, 10, 10000))


class Workload:
    """One rule at one size, set up as ``train()`` sets it up; ``run(n)`` trains n samples
    with the compiled kernel (the weights keep learning from call to call)."""

    def __init__(self, data, rule, hidden, seed=0):
        from neuroenergy.config import RunConfig
        from neuroenergy.energy import EnergyMeter
        from neuroenergy.hardware import HardwareTally
        from neuroenergy.network import ACTIVATIONS, LOSSES, Network
        from neuroenergy.rules import writes_per_sample
        from neuroenergy.train import _PlasticPart, _streams
        self.config = RunConfig(rule=rule, hidden=hidden, seed=seed)
        self.data = data
        init_rng, path_rng, self.sample_rng, _ = _streams(seed)
        cfg = self.config
        self.net = Network.initial(N_IN, hidden, 10, cfg.init_std, init_rng, cfg.activation,
                                   cfg.leak)
        units = rule.plastic_units(hidden, path_rng)
        t0 = time.perf_counter()
        self.part = _PlasticPart(self.net, units, data)
        self.setup_seconds = time.perf_counter() - t0
        self.meter = EnergyMeter(self.net.w_in, self.net.w_out, units, cfg.alpha)
        self.hw = HardwareTally()
        p_in, p_out = rule.fractions()
        n_plastic_in = N_IN * int(np.count_nonzero(~self.part.clamped))
        self.k1 = writes_per_sample(p_in, n_plastic_in)
        self.k2 = writes_per_sample(p_out, len(units) * 10)
        self.act = ACTIVATIONS.index(cfg.activation)
        self.loss = LOSSES.index(cfg.loss)
        self.run(0)

    def run(self, n: int) -> int:
        from neuroenergy.sgd_kernel import train_chunk
        part, meter, hw, cfg = self.part, self.meter, self.hw, self.config
        idx = self.sample_rng.integers(0, len(self.data.x_train), size=n, dtype=np.int64)
        done, _ = train_chunk(self.data.x_train, self.data.y_train, idx, part.offset_train,
                              part.w1, part.w2, part.clamped, self.act, float(cfg.leak),
                              self.loss,
                              float(cfg.lr), float(cfg.lr_output), self.k1, self.k2, -1.0,
                              meter.writes, meter.sums, meter.counts_plastic[0],
                              meter.counts_plastic[1], hw.params, hw.stats, -1, 1)
        return int(done)


def interleaved(fns: dict, repeats: int, clock=time.thread_time) -> dict:
    """Call every ``fns[name]()`` (which returns the number of units it did) in turn,
    ``repeats`` rounds, so slow phases of a shared machine hit all of them alike. Returns
    {name: {"median": s/unit, "min": s/unit, "all": [...]}}."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = clock()
            units = fn()
            times[name].append((clock() - t0) / max(units, 1))
    return {name: {"median": float(np.median(v)), "min": float(np.min(v)), "all": v}
            for name, v in times.items()}


def stream_floor(w: np.ndarray, passes: int = 100):
    """Callables for the bandwidth floor of one sample, measured on the spot: ``passes``
    read passes, or read-modify-write passes, over a matrix the size of ``w`` (compiled loops
    that vectorize: the access pattern per-sample SGD cannot avoid). Each returns
    ``passes``, so times come out per pass."""
    import numba

    @numba.njit(cache=True)
    def read_pass(m, acc):
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                acc[j] += m[i, j]

    @numba.njit(cache=True)
    def rmw_pass(m, c):
        for i in range(m.shape[0]):
            ci = c[i]
            for j in range(m.shape[1]):
                m[i, j] += ci

    m = np.array(w, dtype=np.float32, order="C", copy=True)
    acc = np.zeros(m.shape[1], np.float32)
    c = np.zeros(m.shape[0], np.float32)
    read_pass(m, acc)
    rmw_pass(m, c)

    def read():
        for _ in range(passes):
            read_pass(m, acc)
        return passes

    def rmw():
        for _ in range(passes):
            rmw_pass(m, c)
        return passes

    return read, rmw


def bench_args(doc: str, quick_help: str = "fewer rounds"):
    """The options every benchmark script takes: --quick and --json (a JSON line after the
    tables), with the first line of its docstring as the description."""
    import argparse
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", action="store_true", help="also print a JSON line")
    return parser.parse_args()


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f}"


def table(headers, rows) -> str:
    """A GitHub-flavoured markdown table."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    return "\n".join([line, sep, *body])


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 and math.isfinite(a / b) else "-"

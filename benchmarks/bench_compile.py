"""Compilation: the first call of the training kernel in a process with an empty numba
cache, then the same call in a second process that loads the cached machine code.

A run compiles only the code paths of its rule (``sgd_kernel._flag``), so each rule's kind
of layer is timed: dense (backprop, path), sparse selections (top-fraction), selections
written as masks (combined), without and with hardware tallies.

Each measurement runs in a fresh process with ``NUMBA_CACHE_DIR`` pointing at a new empty
folder, so the package's own cache is neither used nor touched. Times are wall seconds and
the process's CPU seconds (on a busy machine the CPU time is the fairer figure).

    python benchmarks/bench_compile.py [--quick] [--json]
"""
import json
import os
import subprocess
import sys
import tempfile

from _common import ROOT, bench_args, table

TARGET_S = 20.0

CHILD = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
sys.path.insert(0, {root!r})
import numpy as np
from neuroenergy.sgd_kernel import train_chunk
t1, c1 = time.perf_counter(), time.process_time()
rng = np.random.default_rng(0)
x = rng.normal(size=(20, 785)).astype(np.float32)
y = rng.integers(0, 10, 20)
w1 = rng.normal(0, 0.03, (785, 30)).astype(np.float32)
w2 = rng.normal(0, 0.03, (30, 10)).astype(np.float32)
clamped = np.zeros(30, bool)
clamped[0] = True
if {hardware}:
    from hardware_models import presets
    from hardware_models.tally import N_STATS, pack_kernel_params
    params = np.ascontiguousarray(pack_kernel_params([presets.get(presets.names()[0])]))
    stats = np.zeros((2, 1, N_STATS))
else:
    params, stats = np.zeros((0, 1)), np.zeros((2, 0, 1))
train_chunk(x, y, np.arange(20), np.zeros((0, 10), np.float32), w1, w2, clamped, 0, 0.1, 0,
            0.01, 0.01, {k1}, {k2}, -1.0, np.zeros(2, np.int64), np.zeros((2, 3)),
            np.zeros((785, 30), np.int32), np.zeros((30, 10), np.int32), params, stats, -1, 0)
t2, c2 = time.perf_counter(), time.process_time()
print("JSON " + json.dumps({{"import_wall": t1 - t0, "call_wall": t2 - t1,
                             "call_cpu": c2 - c1, "total_wall": t2 - t0}}))
"""


# name, hardware tallies, k1 and k2 (writes per sample on the 785 x 30 and 30 x 10 layers)
CASES = [
    ("backprop, path (dense layers)", False, -1, -1),
    ("top-fraction (sparse selections)", False, 100, 3),
    ("combined (selections as masks, dense output layer)", False, 4000, -1),
    ("backprop, path, hardware tallies", True, -1, -1),
    ("top-fraction, combined, hardware tallies", True, 100, 3),
]


def child(cache_dir, hardware=False, k1=-1, k2=-1):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, OPENBLAS_NUM_THREADS="1")
    code = CHILD.format(root=str(ROOT), hardware=hardware, k1=k1, k2=k2)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("JSON "):
            return json.loads(line[5:])
    raise RuntimeError(out.stderr[-3000:])


def main():
    args = bench_args(__doc__, "the dense kernels only")
    rows, records = [], []
    cases = [c for c in CASES if c[2] < 0] if args.quick else CASES
    for name, hardware, k1, k2 in cases:
        with tempfile.TemporaryDirectory() as cache:
            first = child(cache, hardware, k1, k2)
            second = child(cache, hardware, k1, k2)
        ok = first["call_cpu"] <= TARGET_S  # CPU: the wall time of an idle machine
        rows.append([name, f"{first['call_wall']:.1f}", f"{first['call_cpu']:.1f}",
                     f"{second['call_wall']:.2f}", f"{first['import_wall']:.1f}",
                     f"<= {TARGET_S:.0f} s", "yes" if ok else "no"])
        records.append({"workload": name, "first": first, "cached": second})
    print("### Compilation (first call in a fresh process, empty numba cache; 'met' judges "
          "the CPU time, which is the wall time on an idle machine)\n")
    print(table(["training kernel for", "first call wall s", "first call CPU s",
                 "cached call wall s", "import s", "target", "met"], rows))
    if args.json:
        print("JSON " + json.dumps(records))


if __name__ == "__main__":
    main()

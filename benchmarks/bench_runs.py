"""Whole runs to 95% test accuracy, each in a fresh process pinned to one BLAS thread:
``train_seconds`` (the training loop with its evaluations, as ``neuroenergy train`` reports
it), the wall time of ``train()`` (set-up included: for the path, the frozen units' output
term on all 70,000 images), and the peak resident memory of the process.

A per-sample PyTorch loop of the same recipe is timed on a few hundred samples and scaled to
the same number of samples, as the side-by-side reference.

    python benchmarks/bench_runs.py [--quick] [--json]
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _common import table

HERE = Path(__file__).resolve().parent
RUNS = [  # name, rule, hidden, target train_seconds, target wall (set-up included)
    ("backprop, 100 hidden", "Backprop()", 100, 1.6, None),
    ("backprop, 1,000 hidden", "Backprop()", 1000, 7.0, None),
    ("path k=100, 10,000 hidden", "Path(k=100)", 10000, None, 60.0),
]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {here!r})
import _common
from _common import load_data
from neuroenergy.config import RunConfig
from neuroenergy.rules import Backprop, Path
from neuroenergy.train import train
data = load_data()
rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
config = RunConfig(rule={rule}, hidden={hidden}, seed=0)
t0 = time.perf_counter()
result = train(config, data=data)
wall = time.perf_counter() - t0
torch_s = None
if {torch}:
    try:
        import numpy as np
        from _common import interleaved
        from numpy_reference import TorchSGD
        net = result.network
        ref = TorchSGD(net.w_in, net.w_out, result.plastic_units, -1, -1)
        rng = np.random.default_rng(0)
        res = interleaved({{"t": lambda: ref.train(data.x_train, data.y_train,
                                                     rng.integers(0, 60000, 100))}}, 3,
                          clock=time.perf_counter)
        torch_s = res["t"]["median"] * result.samples
    except ImportError:
        pass
print("JSON " + json.dumps({{"status": result.status, "samples": result.samples,
                             "epochs": result.epochs, "accuracy": result.test_accuracy,
                             "train_seconds": result.train_seconds, "wall": wall,
                             "data": data.name, "torch_projected_s": torch_s,
                             "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                             "rss_data_mb": rss_data / 1024}}))
"""


def run_child(rule, hidden, with_torch):
    code = CHILD.format(here=str(HERE), rule=rule, hidden=hidden, torch=with_torch)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("JSON "):
            return json.loads(line[5:])
    raise RuntimeError(f"run failed:\n{out.stderr[-3000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 100-hidden-unit run")
    parser.add_argument("--json", action="store_true", help="also print a JSON line")
    args = parser.parse_args()
    rows, records = [], []
    for name, rule, hidden, target_train, target_wall in RUNS:
        if args.quick and hidden > 100:
            continue
        r = run_child(rule, hidden, with_torch=hidden == 100)
        checks = []
        if target_train is not None:
            checks.append(r["train_seconds"] <= target_train)
        if target_wall is not None:
            checks.append(r["wall"] <= target_wall)
        torch_txt = f"{r['torch_projected_s']:.1f}" if r["torch_projected_s"] else "-"
        rows.append([name, r["status"], f"{r['samples']:,}", f"{100 * r['accuracy']:.2f}",
                     f"{r['train_seconds']:.2f}", f"{r['wall']:.2f}", torch_txt,
                     f"{r['rss_mb']:.0f} ({r['rss_data_mb']:.0f})",
                     (f"train <= {target_train} s" if target_train else f"wall <= {target_wall} s"),
                     "yes" if all(checks) else "no"])
        records.append({"workload": name, **r})
    print("### Whole runs to 95% (one core; seed 0; wall = train() with set-up; "
          f"data: {records[0]['data'] if records else '-'})\n")
    print(table(["run", "status", "samples", "test acc %", "train_seconds", "wall s",
                 "torch loop s (projected)", "peak RSS MB (after data)", "target", "met"],
                rows))
    if args.json:
        print("JSON " + json.dumps(records))


if __name__ == "__main__":
    main()

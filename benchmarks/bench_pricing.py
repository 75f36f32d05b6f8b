"""Cost of pricing weight writes on hardware inside the training kernel, per write, with the
row-at-a-time tallies (``neuroenergy.kernels.write_pairs``: rows collected, then one
vectorised loop per device) side by side with the per-write reference (the same writes,
one ``tally_write`` call per device and write, as the kernels did before), measured in this
process and interleaved round by round (medians of thread CPU time).

    python benchmarks/bench_pricing.py [--quick] [--json]

Workloads: one dense update of a 785 x 100 layer (backprop) and rows of ~10 writes (10% of
the same layer, as top-fraction at p = 0.1 or combined), on the eight default presets of
``compare`` and on SRAM alone. Both sides give the same statistics (the tests check it).
"""
import json

from _common import bench_args, interleaved, table
import numba
import numpy as np

from hardware_models import pack_kernel_params, presets
from hardware_models import tally as T

DEFAULT = ("rram-neurosim", "pcm", "fefet", "ecram", "sram-22nm", "stt-mram", "biology-low",
           "biology-high")


@numba.njit(cache=True)
def per_write_reference(w, pre, post, lr, sel_i, sel_j, hw, stats, row_max):
    """The writes of ``write_pairs`` priced with one ``tally_write`` per device and write."""
    n_dev = hw.shape[0]
    current = -1
    row_n = 0
    for t in range(sel_i.shape[0] + 1):
        i = sel_i[t] if t < sel_i.shape[0] else -1
        if i != current:
            if current >= 0 and row_n > 0:
                for d in range(n_dev):
                    T.tally_row(hw[d], stats[0, d], row_n, row_max[d])
            if i < 0:
                break
            current = i
            row_n = 0
            row_max[:] = 0.0
        j = sel_j[t]
        dw = -lr * np.float64(pre[i]) * np.float64(post[j])
        if dw == 0.0:
            continue
        w_old = np.float64(w[i, j])
        w[i, j] = w[i, j] + np.float32(-np.float32(lr) * pre[i]) * post[j]
        row_n += 1
        for d in range(n_dev):
            u = 0.5
            size = T.tally_write(hw[d], stats[0, d], w_old, w_old + dw, u)
            row_max[d] = max(row_max[d], size)


def workload(names, fraction, seed=0):
    from neuroenergy.kernels import write_pairs
    rng = np.random.default_rng(seed)
    hw = pack_kernel_params([presets.get(n) if n.startswith("biology")
                             else presets.get(n, w_max=0.5) for n in names])
    n_in, n_out = 785, 100
    w = rng.normal(0.0, 0.03, (n_in, n_out)).astype(np.float32)
    pre = rng.normal(0.0, 0.3, n_in).astype(np.float32)
    post = rng.normal(0.0, 0.1, n_out).astype(np.float32)
    n_pairs = int(n_in * n_out * fraction)
    flat = np.sort(rng.choice(n_in * n_out, n_pairs, replace=False))
    sel_i, sel_j = (flat // n_out).astype(np.int64), (flat % n_out).astype(np.int64)
    stats = np.zeros((2, hw.shape[0], T.N_STATS))
    meter_i, meter_f = np.zeros(2, np.int64), np.zeros((2, 3))
    counts = np.zeros((n_in, n_out), np.int32)
    row_max = np.zeros(hw.shape[0])
    w_ref = w.copy()

    def rows():
        write_pairs(w, pre, post, 0.01, sel_i, sel_j, n_pairs, 0, -1.0, meter_i, meter_f,
                    counts, hw, stats, -1)
        return n_pairs

    def reference():
        per_write_reference(w_ref, pre, post, 0.01, sel_i, sel_j, hw, stats, row_max)
        return n_pairs
    rows(), reference()  # compile
    return rows, reference


def main():
    args = bench_args(__doc__)
    cases = [("dense 785 x 100, 8 default presets", DEFAULT, 1.0),
             ("rows of ~10 writes, 8 default presets", DEFAULT, 0.1),
             ("dense 785 x 100, sram-22nm", ("sram-22nm",), 1.0),
             ("rows of ~10 writes, sram-22nm", ("sram-22nm",), 0.1)]
    out = []
    for name, names, fraction in cases:
        rows, reference = workload(names, fraction)
        t = interleaved({"rows": rows, "reference": reference}, 5 if args.quick else 15)
        out.append({"workload": name, "row_ns": 1e9 * t["rows"]["median"],
                    "reference_ns": 1e9 * t["reference"]["median"]})
    print("### Pricing writes inside the kernel (ns per write, all devices; median of "
          "interleaved rounds, thread CPU time)\n")
    print(table(["workload", "row tallies", "per-write tallies", "per-write / row"],
                [[r["workload"], f"{r['row_ns']:.1f}", f"{r['reference_ns']:.1f}",
                  f"{r['reference_ns'] / r['row_ns']:.2f}"] for r in out]))
    if args.json:
        print("JSON " + json.dumps(out))


if __name__ == "__main__":
    main()

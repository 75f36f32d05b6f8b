"""Per-sample training cost of the compiled kernel, side by side with a plain numpy and a
PyTorch per-sample loop of the same recipe and with the bandwidth floor, all measured in this
process, interleaved round by round (medians of thread CPU time per sample).

The kernel is called as training calls it: once per evaluation interval (``eval_every``,
2,000 samples), so its per-call work (allocating the selection's buffers, adding the write
counts of the chunk into the count maps, copying the transposed output layer back) weighs
on a sample as it does in a run. That fixed cost is printed below the table; calls of a few
dozen samples would charge it 50x over (it is ~1 ms at 1,000 hidden units).

The floor is what one sample cannot avoid: one pass over the plastic input-layer matrix,
read only (the forward pass; enough for the selective rules) or read-modify-write (a dense
update), timed with compiled loops that vectorize.

    python benchmarks/bench_kernels.py [--quick] [--json]
"""
import json

from _common import (Workload, bench_args, interleaved, load_data, ratio,  # noqa
                     stream_floor, table, us)
import numpy as np

# name, rule factory, hidden units, samples per reference call, target
WORKLOADS = [
    ("backprop, 100 hidden", "Backprop()", 100, 40, 20e-6),
    ("backprop, 1,000 hidden", "Backprop()", 1000, 6, 150e-6),
    ("top-fraction p=0.01, 100 hidden", "TopFraction(p=0.01)", 100, 30, None),
    ("top-fraction p=0.01, 1,000 hidden", "TopFraction(p=0.01)", 1000, 4, "1.3x"),
    ("path k=100, 10,000 hidden", "Path(k=100)", 10000, 4, 30e-6),
    ("combined k=50 p=0.2, 100 hidden", "Combined(k=50, p=0.2)", 100, 30, None),
]


def call_cost(wl, repeats=9):
    """Median thread CPU time of a kernel call that trains no sample: its fixed cost."""
    import time
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        wl.run(0)
        times.append(time.thread_time() - t0)
    return float(np.median(times))


def build(data, quick):
    from neuroenergy.config import RunConfig
    from neuroenergy.rules import Backprop, Combined, Path, TopFraction  # noqa: F401
    from numpy_reference import NumpySGD, TorchSGD
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    rows = []
    n_kernel = RunConfig().eval_every  # samples per kernel call, as in training
    if quick:
        n_kernel //= 4
    for name, rule_src, hidden, n_ref, target in WORKLOADS:
        wl = Workload(data, eval(rule_src), hidden)
        wl.run(1000)  # past the first steps: realistic error vectors for the selection
        w_in = wl.net.w_in.copy()
        w_in[:, wl.part.units] = wl.part.w1
        w_out = wl.net.w_out.copy()
        w_out[wl.part.units] = wl.part.w2
        rng = np.random.default_rng(1)
        fns = {"kernel": lambda wl=wl, n=n_kernel: wl.run(n)}
        ref = NumpySGD(w_in, w_out, wl.part.units, wl.k1, wl.k2)
        fns["numpy"] = lambda ref=ref, n=n_ref: ref.train(
            data.x_train, data.y_train, rng.integers(0, len(data.y_train), n))
        if have_torch:
            tref = TorchSGD(w_in, w_out, wl.part.units, wl.k1, wl.k2)
            fns["torch"] = lambda tref=tref, n=n_ref: tref.train(
                data.x_train, data.y_train, rng.integers(0, len(data.y_train), n))
        passes = max(10, int(2e-3 / max(wl.part.w1.nbytes / 30e9, 1e-7)))
        fns["read floor"], fns["rmw floor"] = stream_floor(wl.part.w1, passes)
        rows.append((name, hidden, target, wl, fns))
    return rows, have_torch, n_kernel


def main():
    args = bench_args(__doc__)
    data = load_data()
    rows, have_torch, n_kernel = build(data, args.quick)
    rounds = 5 if args.quick else 15
    # one interleaved set for all workloads: every round meets the machine in the same state,
    # so ratios between workloads (top-fraction / backprop) are paired round by round
    fns = {(name, kind): fn for name, _, _, _, wl_fns in rows for kind, fn in wl_fns.items()}
    res = interleaved(fns, rounds)
    out, records, calls = [], [], []
    bp_name = "backprop, 1,000 hidden"
    for name, hidden, target, wl, wl_fns in rows:
        r = {kind: res[(name, kind)] for kind in wl_fns}
        k = r["kernel"]["median"]
        paired = None
        if target == "1.3x":
            paired = float(np.median(np.array(r["kernel"]["all"])
                                     / np.array(res[(bp_name, "kernel")]["all"])))
            target_s = 1.3 * res[(bp_name, "kernel")]["median"]
            target_txt = f"<= 1.3 x backprop ({us(target_s)})"
            met = "yes" if paired <= 1.3 else "no"
        else:
            target_s = target
            target_txt = f"<= {us(target)}" if target else "-"
            met = "yes" if target_s and k <= target_s else ("no" if target_s else "-")
        torch_med = r["torch"]["median"] if have_torch else float("nan")
        out.append([name, us(k), us(r["read floor"]["median"]), us(r["rmw floor"]["median"]),
                    ratio(k, r["rmw floor"]["median"]), us(r["numpy"]["median"]),
                    ratio(r["numpy"]["median"], k), us(torch_med) if have_torch else "-",
                    ratio(torch_med, k) if have_torch else "-",
                    target_txt + (f"; paired ratio {paired:.2f}" if paired else ""), met])
        fixed = call_cost(wl)
        calls.append(f"{name} {us(fixed)} us ({100 * fixed / (n_kernel * k):.1f}% of a "
                     f"{n_kernel:,}-sample call)")
        records.append({"workload": name, "kernel_s": k, "numpy_s": r["numpy"]["median"],
                        "call_fixed_s": fixed, "samples_per_call": n_kernel,
                        "torch_s": torch_med if have_torch else None,
                        "read_floor_s": r["read floor"]["median"],
                        "rmw_floor_s": r["rmw floor"]["median"],
                        "kernel_min_s": r["kernel"]["min"], "target_s": target_s,
                        "paired_ratio_to_backprop": paired})
    print(f"### Per-sample training cost (us per sample, median of {rounds} rounds in which "
          f"every column of every row runs in turn; the kernel {n_kernel:,} samples a call; "
          f"thread CPU time; data: {data.name})\n")
    print(table(["workload", "kernel", "read floor", "rmw floor", "kernel / rmw floor",
                 "numpy", "numpy / kernel", "torch", "torch / kernel", "target", "met"], out))
    print("\nFixed cost of a kernel call (no sample), included above: " + "; ".join(calls)
          + ".")
    if not have_torch:
        print("\nPyTorch is not installed: its column is empty (pip install torch==2.13.0).")
    if args.json:
        print("JSON " + json.dumps(records))


if __name__ == "__main__":
    main()

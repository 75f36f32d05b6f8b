"""Test-set evaluation against the single-core matrix-product rate measured on the spot.

Evaluating the 10,000 test images is one (10,000 x 785) @ (785 x plastic units) product plus
the activation, the small output product and the argmax. The rate is that product's flops
over the whole evaluation time; the reference is the same product alone, one BLAS call.
The study evaluates every 2,000 samples, so this is a large share of a run.

    python benchmarks/bench_eval.py [--quick] [--json]
"""
import json

from _common import Workload, bench_args, interleaved, load_data, table
import numpy as np

CASES = [("backprop, 100 hidden", "Backprop()", 100),
         ("backprop, 1,000 hidden", "Backprop()", 1000),
         ("path k=100, 1,000 hidden", "Path(k=100)", 1000)]
TARGET_FRACTION = 0.70


def main():
    args = bench_args(__doc__)
    from neuroenergy.rules import Backprop, Path  # noqa: F401
    data = load_data()
    rows, records = [], []
    for name, rule_src, hidden in CASES:
        wl = Workload(data, eval(rule_src), hidden)
        part, net = wl.part, wl.net
        x = data.x_test
        flops = 2.0 * x.shape[0] * x.shape[1] * part.w1.shape[1]
        res = interleaved({"evaluation": lambda: (part.test_accuracy(net, data), 1)[1],
                           "matmul": lambda: (x @ part.w1, 1)[1]}, 3 if args.quick else 9)
        t_eval, t_mm = res["evaluation"]["median"], res["matmul"]["median"]
        frac = t_mm / t_eval
        rows.append([name, f"{t_eval * 1e3:.1f}", f"{flops / t_eval / 1e9:.1f}",
                     f"{t_mm * 1e3:.1f}", f"{flops / t_mm / 1e9:.1f}", f"{100 * frac:.0f}%",
                     f">= {100 * TARGET_FRACTION:.0f}%", "yes" if frac >= TARGET_FRACTION
                     else "no"])
        records.append({"workload": name, "eval_s": t_eval, "matmul_s": t_mm,
                        "fraction": frac})
    print("### Test-set evaluation (10,000 images; ms, GFLOP/s of the input-layer product; "
          f"one BLAS thread; data: {data.name})\n")
    print(table(["network", "evaluation ms", "GFLOP/s", "matmul alone ms", "matmul GFLOP/s",
                 "fraction of matmul rate", "target", "met"], rows))
    if args.json:
        print("JSON " + json.dumps(records))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

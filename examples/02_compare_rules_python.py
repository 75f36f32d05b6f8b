"""The four rules of the study side by side, from Python, with the results stored in HDF5.

Headless; run with ``python examples/02_compare_rules_python.py [OUT.h5]``.
"""
import sys

from neuroenergy import RunConfig, train
from neuroenergy.compare import compare_rules
from neuroenergy.data import load_dataset
from neuroenergy.report import format_table
from neuroenergy.store import write_run

out = sys.argv[1] if len(sys.argv) > 1 else "compare_example.h5"
data = load_dataset("mnist")
summaries = []
for rule in compare_rules(hidden=100):
    result = train(RunConfig(rule=rule, hidden=100, seed=1), data)
    write_run(out, result)
    summaries.append(result.to_dict())
print(format_table(summaries))
print(f"stored in {out}")

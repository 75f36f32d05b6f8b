"""First run: train a 784-100-10 network with the top-fraction rule and read its energy.

Headless; run with ``python examples/01_first_run.py`` after ``neuroenergy data fetch``.
"""
from neuroenergy import RunConfig, TopFraction, train

config = RunConfig(rule=TopFraction(p=0.01), hidden=100, seed=0)
result = train(config)
energy = result.energy
print(f"status {result.status} after {result.epochs:.2f} epochs, "
      f"test accuracy {100 * result.test_accuracy:.2f}%")
print(f"writes M0 = {energy['M0']['total']:.3g}, change M1 = {energy['M1']['total']:.3g}, "
      f"minimum M1_min = {energy['M1_min']['total']:.3g}, "
      f"inefficiency M1/M1_min = {energy['inefficiency_M1']:.1f}")

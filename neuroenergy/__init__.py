"""neuroenergy: how much energy does learning cost, and how much can smarter plasticity save.

Quick start::

    from neuroenergy import RunConfig, train, rules
    result = train(RunConfig(rule=rules.TopFraction(p=0.01), hidden=100, seed=0))
    print(result.status, result.epochs, result.energy["M1"]["total"])
"""
__version__ = "0.1.0"

from .config import RunConfig  # noqa: E402
from .rules import Backprop, Combined, Path, TopFraction, make_rule  # noqa: E402
from . import rules  # noqa: E402
from .train import Result, train  # noqa: E402

__all__ = ["RunConfig", "Result", "train", "rules", "make_rule", "Backprop", "TopFraction",
           "Path", "Combined", "__version__"]

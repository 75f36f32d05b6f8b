"""Energy of learning against network size for four plasticity rules (the study's main result).

Figure reproduced: the energy needed to learn MNIST to 95% test accuracy - the number of
synaptic updates M0 and the summed weight change M1 - for plain backprop and three
plasticity-restricting rules (only the largest updates per sample; a path of a few hidden
units; both combined), against the number of hidden units, with the savings against
backprop, the distance from the minimal energy, and the learning time. Writes a markdown
report with the figures and a table that checks each claim of the paper against the data.

Reference
---------
van Rossum, M. C. W., & Pache, A. (2024). Competitive plasticity to reduce the energetic
costs of learning. PLoS Computational Biology 20(10): e1012553.
https://doi.org/10.1371/journal.pcbi.1012553 (preprint: arXiv:2304.02594)

Usage (headless)::

    python examples/frompapers/vanRossum_Pache_2024.py [--quick] [--out DIR] [--workers N]

The full grid (4 rules x 5 sizes from 100 to 10,000 hidden units x 3 seeds) is the same as
``neuroenergy reproduce``; ``--quick`` runs 100-1,000 hidden units with 2 seeds. The run is
resumable: rerunning continues where an interrupted run stopped.
"""
import argparse
import sys
from pathlib import Path

from neuroenergy.reproduce import reproduce


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the three smallest sizes, 2 seeds")
    parser.add_argument("--out", default=None, help="output folder (default results/...)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
    args = parser.parse_args(argv)
    out = Path(args.out or ("results/vanRossum_Pache_2024" + ("_quick" if args.quick else "")))
    report = reproduce(out, quick=args.quick, workers=args.workers)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":  # the guard lets the worker processes import this file safely
    sys.exit(main())

"""A trained 784-100-10 network as a spiking network: accuracy vs presentation time.

Trains the rate network (about 15 s), converts it to integrate-and-fire neurons (reset by
subtraction, 99.9th-percentile normalisation, paired neurons for the leaky ReLU), presents
1,000 MNIST test images in one Brian2 run of 200 ms per image, and reads the outputs at
10, 20, 50, 100 and 200 ms. Prints the accuracy, spikes, synaptic operations and energy per
image on cited per-operation figures (order of magnitude).

Headless; needs ``pip install neuroenergy[brian2]``. Run with
``python examples/03_spiking_conversion.py [--target numpy|cython|cpp_standalone]
[--images 1000] [--input current|poisson]``. The first cython run compiles (about a minute).

References: Diehl et al., IJCNN 2015; Rueckauer et al., Front. Neurosci. 11:682 (2017).
"""
import argparse

from neuroenergy import RunConfig, train
from neuroenergy.data import load_dataset
from neuroenergy.spiking import SpikingConfig, evaluate_conversion, format_table

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--target", default="cython")
parser.add_argument("--images", type=int, default=1000)
parser.add_argument("--input", default="current")
args = parser.parse_args()

data = load_dataset("mnist")
result = train(RunConfig(hidden=100, seed=0), data)
print(f"rate network: {100 * result.test_accuracy:.2f}% on the 10,000 test images "
      f"after {result.samples} samples")
config = SpikingConfig(duration_ms=200, readouts_ms=(10, 20, 50, 100), input=args.input,
                       target=args.target)
report = evaluate_conversion(result.network, data, config, n_images=args.images)
print(f"{args.images} test images, {args.input} input, target {args.target}: "
      f"{report['simulation_seconds']:.1f} s simulated "
      f"({report['images_per_second']:.0f} images/s), {report['build_seconds']:.1f} s to build")
print(format_table(report))
print(f"energy: {report['energy_label']}")

"""The Brian2 bridge: trained rate networks as spiking networks, and spiking learning with the
study's rules as gates.

Brian2 is an optional dependency (``pip install neuroenergy[brian2]``). Importing this
package never imports it; the functions that simulate do, and raise
:class:`neuroenergy.errors.DependencyError` with the install command when it is missing.

Quick start::

    from neuroenergy import RunConfig, train
    from neuroenergy.data import load_dataset
    from neuroenergy.spiking import SpikingConfig, evaluate_conversion
    net = train(RunConfig(hidden=100, seed=0)).network
    report = evaluate_conversion(net, load_dataset("mnist"),
                                 SpikingConfig(duration_ms=100, target="cython"), 1000)
    print(report["ann_accuracy"], report["snn_accuracy"])
"""
from ._backend import TARGETS, brian
from .compare import compare_rules, format_rows
from .convert import (ConvertedNetwork, InferenceModel, SimulationResult, SpikingConfig,
                      convert, simulate)
from .energy import PROFILES, inference_energy
from .inference import evaluate_conversion, format_table
from .learn import LearnConfig, SpikingTrainResult, train_spiking

__all__ = ["TARGETS", "brian", "SpikingConfig", "ConvertedNetwork", "SimulationResult",
           "InferenceModel", "convert", "simulate", "evaluate_conversion", "format_table",
           "PROFILES", "inference_energy", "LearnConfig", "SpikingTrainResult",
           "train_spiking", "compare_rules", "format_rows"]

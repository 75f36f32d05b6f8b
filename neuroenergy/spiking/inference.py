"""Converted-network evaluation: spiking accuracy against the rate network's on the same
test images, spikes and synaptic operations per image, and inference energy per image, at
every read-out time of one run."""
from __future__ import annotations

import time

import numpy as np

from .. import __version__
from .._validate import check_number
from ..data import Dataset
from ..errors import ConfigError
from ..network import Network
from .convert import SpikingConfig, convert, simulate
from .energy import LABEL, inference_energy, profile_table, rate_macs_per_image

N_OUT = 10


def evaluate_conversion(network: Network, data: Dataset, config: SpikingConfig = None,
                        n_images: int = 1000, report_ms: float = None) -> dict:
    """Convert ``network``, present the first ``n_images`` test images, and report.

    The normalisation uses the first ``config.norm_images`` training images. One row per
    read-out time (``config.readouts_ms`` plus the full ``duration_ms``); the top-level keys
    describe the read-out at ``report_ms`` (default: the full presentation).

    Returns
    -------
    dict with ``ann_accuracy``, ``snn_accuracy``, ``duration_ms``, ``spikes_per_image``,
    ``synaptic_ops_per_image``, ``energy_j_per_image`` (by profile), ``rows`` (per read-out
    time), timing, and the conversion's scales.
    """
    config = config or SpikingConfig()
    n_images = check_number(n_images, "n_images", "evaluate_conversion", 1, len(data.x_test),
                            integer=True)
    x, y = data.x_test[:n_images], data.y_test[:n_images]
    t0 = time.perf_counter()
    conv = convert(network, data.x_train[:config.norm_images], config.percentile,
                   config.leak_mode)
    sim = simulate(conv, x, config)
    total_seconds = time.perf_counter() - t0
    n_in = network.w_in.shape[0]
    rate_macs = rate_macs_per_image(n_in, network.hidden)
    poisson = config.input == "poisson"
    input_macs = 0 if poisson else n_in * (network.hidden - 1)
    rows = []
    for k, ms in enumerate(sim.readout_ms):
        hidden = float(sim.hidden_spikes[k].mean())
        output = float(sim.counts[k].sum(axis=1).mean())
        inputs = float(sim.input_spikes[k].mean())
        synops = inputs * conv.n_channels + hidden * N_OUT
        rows.append({
            "duration_ms": ms,
            "snn_accuracy": float(np.mean(sim.predictions(k) == y)),
            "tie_fraction": sim.tie_fraction(k),
            "spikes_per_image": hidden + output + inputs,
            "hidden_spikes_per_image": hidden,
            "output_spikes_per_image": output,
            "input_spikes_per_image": inputs,
            "synaptic_ops_per_image": synops,
            "energy_j_per_image": inference_energy(rate_macs, synops, input_macs),
        })
    if report_ms is None:
        last = rows[-1]
    else:
        match = [r for r in rows if abs(r["duration_ms"] - report_ms) < 1e-9]
        if not match:
            raise ConfigError(f"report_ms={report_ms!r} is not a read-out time; the read-outs "
                              f"are {[r['duration_ms'] for r in rows]}.")
        last = match[0]
    report = {
        "ann_accuracy": float(network.accuracy(x, y)),
        "snn_accuracy": last["snn_accuracy"],
        "rate_limit_accuracy": float(np.mean(np.argmax(conv.expected_scores(x), 1) == y)),
        "duration_ms": last["duration_ms"],
        "spikes_per_image": last["spikes_per_image"],
        "synaptic_ops_per_image": last["synaptic_ops_per_image"],
        "energy_j_per_image": last["energy_j_per_image"],
        "rate_macs_per_image": rate_macs,
        "input_macs_per_image": input_macs,
        "energy_label": LABEL,
        "energy_profiles": profile_table(),
        "rows": rows,
        "n_images": n_images,
        "hidden": network.hidden,
        "n_channels": conv.n_channels,
        "dt_ms": config.dt_ms,
        "input": config.input,
        "leak_mode": conv.leak_mode,
        "percentile": config.percentile,
        "lambdas": conv.lambdas,
        "target": config.target,
        "seed": config.seed,
        "simulation_seconds": sim.wall_seconds,
        "build_seconds": sim.build_seconds,
        "total_seconds": total_seconds,
        "images_per_second": n_images / sim.wall_seconds if sim.wall_seconds > 0 else None,
        "version": __version__,
    }
    return report


def format_table(report: dict) -> str:
    """The accuracy-vs-presentation-time table as Markdown."""
    profiles = list(report["energy_j_per_image"])
    head = ["time (ms)", "SNN acc", "ANN acc", "ties", "spikes/img", "synops/img"] + \
        [f"{p} (nJ)" for p in profiles]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["rows"]:
        cells = [f"{r['duration_ms']:g}", f"{100 * r['snn_accuracy']:.1f}",
                 f"{100 * report['ann_accuracy']:.1f}", f"{100 * r['tie_fraction']:.1f}%",
                 f"{r['spikes_per_image']:.0f}", f"{r['synaptic_ops_per_image']:.0f}"]
        cells += [f"{1e9 * r['energy_j_per_image'][p]:.1f}" for p in profiles]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""Rate vs spiking learning, rule by rule: the same rule, network size, seed and number of
samples, metered with the same energy meter (and priced on the same hardware presets).
One call produces the table and stores it, with every run, in an HDF5 file."""
from __future__ import annotations

import math
import time
import uuid

import numpy as np

from .. import __version__

N_TRAIN = 60000


def _samples_to_target(samples, accuracy, target):
    reached = np.flatnonzero(np.asarray(accuracy) >= target)
    return int(np.asarray(samples)[reached[0]]) if reached.size else None


def _row(network, rule, params, samples, accuracy, spiking_accuracy, to_target, energy,
         hardware, seconds, per_second):
    row = {"network": network, "rule": rule, "rule_params": params, "samples": samples,
           "accuracy": accuracy, "spiking_accuracy": spiking_accuracy,
           "samples_to_target": to_target,
           "M0": energy["M0"]["total"], "M1": energy["M1"]["total"],
           "M0_min": energy["M0_min"]["total"], "M1_min": energy["M1_min"]["total"],
           "M0_input": energy["M0"]["input"], "M0_output": energy["M0"]["output"],
           "M1_input": energy["M1"]["input"], "M1_output": energy["M1"]["output"],
           "inefficiency_M1": energy["inefficiency_M1"],
           "energy_j": {name: rep["energy_j"] for name, rep in hardware.items()},
           "seconds": seconds, "presentations_per_second": per_second}
    return row


def compare_rules(configs, rate_lr=0.01, out=None, progress=None, raw=None, data=None) -> dict:
    """Train every ``LearnConfig`` as a spiking network and its rate counterpart.

    The rate run uses ``neuroenergy.train`` with the same rule, hidden size, seed, number of
    samples (no early stop), evaluation after every ``chunk`` samples, learning rate
    ``rate_lr`` and the same hardware presets.

    Returns
    -------
    dict with ``rows`` (one per network and rule), ``markdown`` and, with ``out``, where the
    table and the runs were stored.
    """
    from ..config import RunConfig
    from ..data import load_dataset, load_raw
    from ..train import train
    from .learn import train_spiking
    raw = load_raw("mnist") if raw is None else raw
    data = load_dataset("mnist") if data is None else data
    rows, stored = [], []
    for cfg in configs:
        t0 = time.perf_counter()
        spk = train_spiking(cfg, raw)
        rows.append(_row("spiking", cfg.rule.name, cfg.rule.params(), spk.samples,
                         spk.rate_equivalent_accuracy, spk.spiking_accuracy,
                         spk.samples_to_target, spk.energy, spk.hardware,
                         time.perf_counter() - t0, spk.presentations_per_second))
        rate_cfg = RunConfig(rule=cfg.rule, hidden=cfg.hidden, seed=cfg.seed, lr=rate_lr,
                             target_accuracy=1.0, max_epochs=cfg.samples / N_TRAIN,
                             eval_every=min(cfg.chunk, cfg.samples), hardware=cfg.hardware)
        rate = train(rate_cfg, data)
        curves = rate.curves
        rows.append(_row("rate", cfg.rule.name, cfg.rule.params(), rate.samples,
                         rate.test_accuracy, None,
                         _samples_to_target(curves["samples"], curves["accuracy"],
                                            cfg.target_accuracy),
                         rate.energy, rate.hardware, rate.train_seconds,
                         rate.samples / rate.train_seconds if rate.train_seconds else None))
        if out is not None:
            from ..store import write_run
            from .cli import store_spiking_run
            stored.append({"rule": cfg.rule.name, "spiking": store_spiking_run(out, spk),
                           "rate": "runs/" + write_run(out, rate)})
        if progress is not None:
            progress(format_rows(rows[-2:]))
    table = {"rows": rows, "markdown": format_rows(rows), "target": configs[0].target
             if configs else None, "target_accuracy": configs[0].target_accuracy
             if configs else None, "version": __version__}
    if out is not None:
        table["stored"] = {"file": str(out), "group": _store_table(out, table),
                           "runs": stored}
    return table


def _store_table(path, table) -> str:
    import json
    from ..store import write_extra
    group = f"spiking/compare/{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:6]}"
    rows = table["rows"]
    arrays = {"network": np.array([r["network"] for r in rows], dtype="S8"),
              "rule": np.array([r["rule"] for r in rows], dtype="S16")}
    for key in ("samples", "accuracy", "M0", "M1", "M0_min", "M1_min", "inefficiency_M1",
                "presentations_per_second"):
        arrays[key] = np.array([_num(r[key]) for r in rows], np.float64)
    arrays["samples_to_target"] = np.array([_num(r["samples_to_target"]) for r in rows])
    for name in sorted({n for r in rows for n in r["energy_j"]}):
        arrays[f"energy_j/{name}"] = np.array([_num(r["energy_j"].get(name)) for r in rows])
    write_extra(path, group, arrays, {"rows_json": json.dumps(rows, default=_plain),
                                      "markdown": table["markdown"],
                                      "version": table["version"]})
    return group


def _num(x):
    return float("nan") if x is None else float(x)


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _fmt(x, spec):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def format_rows(rows) -> str:
    """Rows of :func:`compare_rules` (or spiking summaries) as a Markdown table."""
    rows = [_as_row(r) for r in rows]
    presets = sorted({n for r in rows for n in r["energy_j"]})
    head = ["network", "rule", "samples", "accuracy", "spiking acc", "to target", "M0", "M1",
            "M1_min", "M1/M1_min", "pres/s"] + [f"{p} (J)" for p in presets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["network"], r["rule"], str(r["samples"]), _fmt(100 * r["accuracy"], ".1f"),
                 _fmt(None if r["spiking_accuracy"] is None else 100 * r["spiking_accuracy"],
                      ".1f"), _fmt(r["samples_to_target"], "d"), _fmt(r["M0"], ".3g"),
                 _fmt(r["M1"], ".3g"), _fmt(r["M1_min"], ".3g"),
                 _fmt(r["inefficiency_M1"], ".2f"), _fmt(r["presentations_per_second"], ".0f")]
        cells += [_fmt(r["energy_j"].get(p), ".3g") for p in presets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _as_row(r):
    if "network" in r and "M0" in r:
        return r
    # a spiking summary (LearnResult.to_dict())
    return _row("spiking", r["rule"], r["rule_params"], r["samples"],
                r["rate_equivalent_accuracy"], r["spiking_accuracy"], r["samples_to_target"],
                r["energy"], r["hardware"], r["total_seconds"], r["presentations_per_second"])

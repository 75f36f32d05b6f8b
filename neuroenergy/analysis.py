"""Aggregates over seeds of stored run summaries: means with 95% intervals per rule and
network size, savings against backprop, and the counts per status. Used by ``show``, the
figures and the reproduction report."""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict

import numpy as np

STATUSES = ("converged", "not_converged", "diverged", "error")
GROUP_FIELDS_IGNORED = ("hidden", "seed", "rule")
BASELINE_RULE = "backprop"


def hidden_key(summary):
    """The network size of a run: an int, or a tuple for several hidden layers."""
    h = summary["hidden"]
    return tuple(h) if isinstance(h, list) else h


def _size_order(h):
    return (isinstance(h, tuple), h)


def status_counts(summaries) -> dict:
    counts = Counter(s.get("status", "unreadable") for s in summaries)
    return {**{k: counts.get(k, 0) for k in STATUSES},
            **{k: v for k, v in counts.items() if k not in STATUSES}}


def mean_ci(values, level=0.95) -> tuple:
    """(mean, low, high, n) of the finite values: Student-t interval over seeds (the interval
    is NaN for a single value)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1
    from scipy.stats import t
    half = float(t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def varying_fields(summaries) -> list:
    """Config fields (besides hidden, seed, rule) that differ between the runs."""
    values = defaultdict(set)
    for s in summaries:
        for k, v in (s.get("config") or {}).items():
            if k not in GROUP_FIELDS_IGNORED:
                values[k].add(repr(v))
    return sorted(k for k, v in values.items() if len(v) > 1)


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _described(summary) -> tuple:
    """(rule parameters, config fields) that describe a run besides rule, size and seed."""
    params = {k: v for k, v in (summary.get("rule_params") or {}).items()
              if v is not None and k != "selection"}
    config = {k: v for k, v in (summary.get("config") or {}).items()
              if k not in GROUP_FIELDS_IGNORED}
    return params, config


class SeriesLabels:
    """Names the series of a file: one per rule and setting, so that a trend over network
    sizes stays one line. A parameter that takes one value per size (a path that grows with
    the network, an output learning rate for the largest one) is part of the size's protocol:
    rule parameters are shown as a range ('k=50-200'), config fields not at all. Config
    fields that differ between runs of one size and rule, or between rules at one size, are
    shown in brackets."""

    def __init__(self, summaries):
        values = defaultdict(lambda: defaultdict(set))  # (rule|None, kind, name) -> size -> set
        for s in summaries:
            params, config = _described(s)
            size = hidden_key(s)
            for k, v in params.items():
                values[(s["rule"], "param", k)][size].add(_text(v))
            for k, v in config.items():
                values[(s["rule"], "config", k)][size].add(repr(v))
                values[(None, "config", k)][size].add(repr(v))
        within = {key for key, by_size in values.items()
                  if any(len(v) > 1 for v in by_size.values())}
        self.split_params = {(rule, name) for rule, kind, name in within if kind == "param"}
        # config fields that vary within a size (for a rule, or across rules) split series
        self.shown_config = {name for rule, kind, name in within if kind == "config"}
        self.ranges = defaultdict(lambda: defaultdict(set))  # series -> other param -> values
        for s in summaries:
            for k, v in _described(s)[0].items():
                if (s["rule"], k) not in self.split_params:
                    self.ranges[self._identity(s)][k].add(_text(v))

    def _identity(self, summary) -> tuple:
        params, config = _described(summary)
        return (summary["rule"],
                tuple((k, _text(v)) for k, v in params.items()
                      if (summary["rule"], k) in self.split_params),
                tuple((k, repr(config.get(k))) for k in sorted(self.shown_config)))

    def __call__(self, summary) -> str:
        params, config = _described(summary)
        ranges = self.ranges.get(self._identity(summary), {})
        shown = []
        for k, v in params.items():
            seen = ranges.get(k, ())
            shown.append(f"{k}={_range_text(seen) if len(seen) > 1 else _text(v)}")
        text = summary["rule"] + (f" ({', '.join(shown)})" if shown else "")
        extra = [f"{k}={_text(config[k])}" for k in sorted(self.shown_config) if k in config]
        return text + (f" [{', '.join(extra)}]" if extra else "")


def _range_text(values) -> str:
    try:
        numbers = sorted(float(v) for v in values)
        return f"{numbers[0]:g}-{numbers[-1]:g}"
    except ValueError:
        return "|".join(sorted(values))


def series_label(summary, labels=None) -> str:
    """The series a run belongs to (see :class:`SeriesLabels`)."""
    return (labels or SeriesLabels([summary]))(summary)


def _protocol(summary) -> str:
    """Everything but the rule and the seed: runs with the same protocol can be paired."""
    config = {k: v for k, v in (summary.get("config") or {}).items() if k not in ("rule", "seed")}
    return json.dumps(config, sort_keys=True)


def _total(summary, measure):
    return ((summary.get("energy") or {}).get(measure) or {}).get("total")


def metric(summary, name):
    """A number from a summary: 'M0', 'M1', 'M1_min'... (totals), 'inefficiency_M1',
    'epochs', 'test_accuracy', or 'energy_j:<preset>'."""
    if name.startswith("energy_j:"):
        rep = (summary.get("hardware") or {}).get(name.split(":", 1)[1])
        return rep.get("energy_j") if rep else None
    if name in ("epochs", "test_accuracy", "train_seconds", "samples"):
        return summary.get(name)
    if name.startswith("inefficiency"):
        return (summary.get("energy") or {}).get(name)
    return _total(summary, name)


def rule_order(label: str):
    """Sort key: the study's order (backprop, top-fraction, path, combined), then others."""
    from .rules import RULES
    names = list(RULES)
    rule = label.split(" ")[0]
    return (names.index(rule) if rule in names else len(names), label)


def finished(summaries) -> list:
    """The runs with results (errors and unreadable runs left out)."""
    return [s for s in summaries if s.get("status") in ("converged", "not_converged",
                                                         "diverged")]


def series_by_rule(summaries) -> dict:
    """{series label: {hidden: [summaries]}} of the runs with results (no errors)."""
    good = finished(summaries)
    labels = SeriesLabels(good)
    out = defaultdict(lambda: defaultdict(list))
    for s in good:
        out[labels(s)][hidden_key(s)].append(s)
    return {k: dict(sorted(out[k].items(), key=lambda kv: _size_order(kv[0])))
            for k in sorted(out, key=rule_order)}


def curve(runs_by_hidden, name, converged_only=True) -> dict:
    """hidden -> (mean, low, high, n) of ``metric(name)`` over seeds."""
    out = {}
    for hidden, runs in runs_by_hidden.items():
        use = [r for r in runs if r["status"] == "converged"] if converged_only else runs
        out[hidden] = mean_ci([metric(r, name) for r in use])
    return out


def savings(summaries, measure="M1") -> dict:
    """{series: {hidden: (mean, low, high, n)}} of backprop's ``measure`` divided by the
    rule's, paired by seed (same seed and every other config field, the size included),
    converged runs only."""
    labels = SeriesLabels(finished(summaries))
    good = [s for s in summaries if s.get("status") == "converged"]
    base = {}
    for s in good:
        if s["rule"] == BASELINE_RULE:
            base[(s["seed"], _protocol(s))] = _total(s, measure)
    ratios = defaultdict(lambda: defaultdict(list))
    for s in good:
        b = base.get((s["seed"], _protocol(s)))
        value = _total(s, measure)
        if s["rule"] != BASELINE_RULE and b and value:
            ratios[labels(s)][hidden_key(s)].append(b / value)
    return {k: {h: mean_ci(d[h]) for h in sorted(d, key=_size_order)}
            for k, d in ratios.items()}


def summary_rows(summaries) -> list:
    """One row per (series, hidden): counts per status and means with 95% intervals over
    the converged runs (epochs, M0, M1, M1_min, M1/M1_min, savings vs backprop)."""
    saving = {m: savings(summaries, m) for m in ("M0", "M1")}
    rows = []
    for label, by_hidden in series_by_rule(summaries).items():
        for hidden, runs in by_hidden.items():
            conv = [r for r in runs if r["status"] == "converged"]
            row = {"series": label, "rule": runs[0]["rule"], "hidden": hidden,
                   "runs": len(runs), **{k: v for k, v in status_counts(runs).items()
                                         if k != "error"}}
            for name in ("epochs", "M0", "M1", "M1_min", "inefficiency_M1", "test_accuracy"):
                row[name] = mean_ci([metric(r, name) for r in conv])
            for m in ("M0", "M1"):
                row[f"savings_{m}"] = saving[m].get(label, {}).get(hidden,
                                                                 (math.nan,) * 3 + (0,))
            rows.append(row)
    return rows


def size_text(hidden) -> str:
    """'1,000', or '300x100' for several hidden layers."""
    return "x".join(map(str, hidden)) if isinstance(hidden, tuple) else f"{hidden:,}"


def _ci_text(ci, fmt):
    mean, lo, hi, n = ci
    if n == 0:
        return "-"
    text = format(mean, fmt)
    if n > 1 and np.isfinite(lo):
        text += f" ±{format((hi - lo) / 2, fmt)}"
    return text


def format_summary(rows) -> str:
    """The aggregate table printed by ``neuroenergy show`` (mean ± 95% half-width)."""
    head = ["rule", "hidden", "runs", "conv", "epochs", "M0", "M1", "M1/M1_min",
            "savings M1"]
    table = [head]
    for r in rows:
        table.append([r["series"], size_text(r["hidden"]), str(r["runs"]), str(r["converged"]),
                      _ci_text(r["epochs"], ".2f"), _ci_text(r["M0"], ".3g"),
                      _ci_text(r["M1"], ".3g"), _ci_text(r["inefficiency_M1"], ".1f"),
                      _ci_text(r["savings_M1"], ".2f") if r["rule"] != BASELINE_RULE else "1"])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

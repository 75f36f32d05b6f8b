"""Aggregates over seeds of stored run summaries: means with 95% intervals per rule and
network size, savings against backprop, and the counts per status. Used by ``show``, the
figures and the reproduction report."""
from __future__ import annotations

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


def _context(summary, varying) -> tuple:
    cfg = summary.get("config") or {}
    return tuple((k, cfg.get(k)) for k in varying)


def series_label(summary, varying=()) -> str:
    """The rule with its parameters, plus the config fields that vary in the file."""
    params = {k: v for k, v in (summary.get("rule_params") or {}).items()
              if v is not None and k != "selection"}
    text = summary["rule"] + (f" ({', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in params.items())})"
                              if params else "")
    extra = [f"{k}={v}" for k, v in _context(summary, varying)]
    return text + (f" [{', '.join(extra)}]" if extra else "")


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


def series_by_rule(summaries) -> dict:
    """{series label: {hidden: [summaries]}} of the runs with results (no errors)."""
    good = [s for s in summaries if s.get("status") in ("converged", "not_converged",
                                                         "diverged")]
    varying = varying_fields(good)
    out = defaultdict(lambda: defaultdict(list))
    for s in good:
        out[series_label(s, varying)][hidden_key(s)].append(s)
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
    rule's, paired by seed (same hidden size, seed and other config), converged runs only."""
    good = [s for s in summaries if s.get("status") == "converged"]
    varying = varying_fields(good)
    base = {}
    for s in good:
        if s["rule"] == BASELINE_RULE:
            base[(hidden_key(s), s["seed"], _context(s, varying))] = _total(s, measure)
    ratios = defaultdict(lambda: defaultdict(list))
    for s in good:
        b = base.get((hidden_key(s), s["seed"], _context(s, varying)))
        value = _total(s, measure)
        if s["rule"] != BASELINE_RULE and b and value:
            ratios[series_label(s, varying)][hidden_key(s)].append(b / value)
    return {k: {h: mean_ci(d[h]) for h in sorted(d, key=_size_order)}
            for k, d in ratios.items()}


def summary_rows(summaries) -> list:
    """One row per (series, hidden): counts per status and means with 95% intervals over
    the converged runs (epochs, M0, M1, M1_min, M1/M1_min, savings vs backprop)."""
    saving = savings(summaries)
    rows = []
    for label, by_hidden in series_by_rule(summaries).items():
        for hidden, runs in by_hidden.items():
            conv = [r for r in runs if r["status"] == "converged"]
            row = {"series": label, "rule": runs[0]["rule"], "hidden": hidden,
                   "runs": len(runs), **{k: v for k, v in status_counts(runs).items()
                                         if k != "error"}}
            for name in ("epochs", "M0", "M1", "M1_min", "inefficiency_M1", "test_accuracy"):
                row[name] = mean_ci([metric(r, name) for r in conv])
            row["savings_M1"] = saving.get(label, {}).get(hidden, (math.nan,) * 3 + (0,))
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

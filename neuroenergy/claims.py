"""The study's claims, each checked against stored runs with a stated criterion.

Each check returns a row: the claim, what was measured, the criterion, and a verdict
('supported', 'partly', 'not supported' or 'no data'). Energies are compared over converged
runs only (a run that never reached the target has no energy-to-target), paired by seed.

References
----------
van Rossum & Pache, "Competitive plasticity to reduce the energetic costs of learning",
PLoS Comput Biol 20(10): e1012553 (2024).
"""
from __future__ import annotations

import math

import numpy as np

from . import analysis

SUPPORTED, PARTLY, NOT_SUPPORTED, NO_DATA = "supported", "partly", "not supported", "no data"
ORDER_1E8 = (5e7, 1e9)  # "of order 1e8": within a factor ~2 below and 10 above
SMALL_TIME_COST = 2.0   # "a small increase in learning time": at most twice backprop's epochs
MODERATE_TIME_COST = 4.0
FAR_FROM_MINIMUM = 10.0  # backprop's M1 / M1_min (the eLife 2020 paper found >= ~20)


def _fmt(x, spec=".3g"):
    return "-" if x is None or not np.isfinite(x) else format(x, spec)


def _rules(rows):
    return [r for r in dict.fromkeys(r["series"] for r in rows)
            if not r.startswith(analysis.BASELINE_RULE)]


def _by(rows, series, key):
    """hidden -> mean of ``key`` for one series (NaN where nothing converged)."""
    return {r["hidden"]: r[key][0] for r in rows if r["series"] == series}


def claim_updates(rows):
    best = [(r[("M0")][0], r["series"], r["hidden"]) for r in rows if r["M0"][3] > 0]
    claim = "Learning MNIST to 95% takes at least ~10^8 synaptic updates"
    if not best:
        return _row(claim, "no converged run", "", NO_DATA)
    m0, series, hidden = min(best)
    bp = [r["M0"][0] for r in rows if r["rule"] == analysis.BASELINE_RULE and r["M0"][3] > 0]
    measured = (f"fewest: {_fmt(m0, '.2g')} updates ({series}, {hidden} hidden); backprop "
                f"{_fmt(min(bp), '.2g')} - {_fmt(max(bp), '.2g')}" if bp else
                f"fewest: {_fmt(m0, '.2g')} ({series}, {hidden} hidden)")
    lo, hi = ORDER_1E8
    verdict = SUPPORTED if lo <= m0 <= hi else (NOT_SUPPORTED if m0 < lo else PARTLY)
    return _row(claim, measured, f"fewest mean M0 within [{lo:.0e}, {hi:.0e}]", verdict)


def claim_savings(rows, measure="M1"):
    claim = {"M1": "Both restrictions save energy (M1) compared with backprop",
             "M0": "... and save synaptic updates (M0, the energy model with alpha = 0)"}[
                 measure]
    parts, fractions = [], []
    for series in _rules(rows):
        s = {h: v for h, v in _by(rows, series, f"savings_{measure}").items()
             if np.isfinite(v)}
        if s:
            parts.append(f"{series}: {_fmt(min(s.values()), '.2g')}x - "
                         f"{_fmt(max(s.values()), '.2g')}x")
            fractions.append(np.mean([v > 1 for v in s.values()]))
    if not parts:
        return _row(claim, "no paired converged runs", "", NO_DATA)
    share = float(np.mean(fractions))
    verdict = SUPPORTED if share == 1 else (PARTLY if share > 0 else NOT_SUPPORTED)
    return _row(claim, "; ".join(parts), "savings factor > 1 at every size, for every rule",
                verdict, f"{share:.0%} of rule-size pairs save")


def claim_growth(rows):
    claim = "Savings grow with network size"
    parts, growing = [], []
    for series in _rules(rows):
        s = {h: v for h, v in _by(rows, series, "savings_M1").items() if np.isfinite(v)}
        if len(s) < 2:
            continue
        sizes = sorted(s)
        rho = _spearman(sizes, [s[h] for h in sizes])
        ratio = s[sizes[-1]] / s[sizes[0]]
        parts.append(f"{series}: {_fmt(s[sizes[0]], '.2g')}x at {sizes[0]} -> "
                     f"{_fmt(s[sizes[-1]], '.2g')}x at {sizes[-1]} (rank corr. {rho:+.2f})")
        growing.append(ratio > 1 and rho > 0.5)
    if not growing:
        return _row(claim, "fewer than two sizes with paired runs", "", NO_DATA)
    share = float(np.mean(growing))
    verdict = SUPPORTED if share == 1 else (PARTLY if share > 0 else NOT_SUPPORTED)
    return _row(claim, "; ".join(parts), "M1 savings larger at the largest size than at the "
                "smallest, rank correlation with size > 0.5", verdict)


def claim_combined_best(rows):
    claim = "Combining both restrictions saves the most"
    combined = [s for s in _rules(rows) if s.startswith("combined")]
    if not combined:
        return _row(claim, "no combined runs", "", NO_DATA)
    sizes = sorted({r["hidden"] for r in rows})
    wins, compared, losers = 0, 0, []
    for h in sizes:
        values = {s: _by(rows, s, "savings_M1").get(h, math.nan) for s in _rules(rows)}
        values = {s: v for s, v in values.items() if np.isfinite(v)}
        if len(values) < 2 or not any(s in values for s in combined):
            continue
        compared += 1
        best = max(values, key=values.get)
        wins += best in combined
        if best not in combined:
            losers.append(f"{h}: {best}")
    if not compared:
        return _row(claim, "no size with combined and another rule converged", "", NO_DATA)
    measured = f"combined has the largest M1 savings at {wins} of {compared} sizes" + (
        f" (best elsewhere - {'; '.join(losers)})" if losers else "")
    verdict = SUPPORTED if wins == compared else (PARTLY if wins else NOT_SUPPORTED)
    return _row(claim, measured, "largest savings factor at every size", verdict)


def claim_time(rows):
    claim = "The restricted rules cost only a little learning time"
    parts, ratios = [], []
    for series in _rules(rows):
        e = _by(rows, series, "epochs")
        bp = {r["hidden"]: r["epochs"][0] for r in rows if r["rule"] == analysis.BASELINE_RULE}
        r = [e[h] / bp[h] for h in e if h in bp and np.isfinite(e[h]) and np.isfinite(bp[h])]
        if r:
            parts.append(f"{series}: {_fmt(min(r), '.2g')}x - {_fmt(max(r), '.2g')}x")
            ratios.append(float(np.median(r)))
    if not ratios:
        return _row(claim, "no converged pairs", "", NO_DATA)
    worst = max(ratios)
    verdict = (SUPPORTED if worst <= SMALL_TIME_COST else
               PARTLY if worst <= MODERATE_TIME_COST else NOT_SUPPORTED)
    return _row(claim, "epochs relative to backprop - " + "; ".join(parts),
                f"median ratio <= {SMALL_TIME_COST:g} for every rule ({MODERATE_TIME_COST:g}: "
                "partly)", verdict)


def claim_inefficiency(rows):
    claim = "Backprop spends far more than the minimal energy M1_min"
    bp = {r["hidden"]: r["inefficiency_M1"][0] for r in rows
          if r["rule"] == analysis.BASELINE_RULE and r["inefficiency_M1"][3] > 0}
    if not bp:
        return _row(claim, "no converged backprop run", "", NO_DATA)
    measured = ", ".join(f"{_fmt(v, '.0f')}x at {h}" for h, v in sorted(bp.items()))
    share = np.mean([v >= FAR_FROM_MINIMUM for v in bp.values()])
    verdict = SUPPORTED if share == 1 else (PARTLY if share > 0 else NOT_SUPPORTED)
    return _row(claim, "M1/M1_min of backprop: " + measured,
                f"M1/M1_min >= {FAR_FROM_MINIMUM:g} at every size", verdict)


def _row(claim, measured, criterion, verdict, note=""):
    return {"claim": claim, "measured": measured, "criterion": criterion, "verdict": verdict,
            "note": note}


def _spearman(x, y) -> float:
    rx = np.argsort(np.argsort(x))
    ry = np.argsort(np.argsort(y))
    if np.std(rx) == 0 or np.std(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def claim_savings_m0(rows):
    return claim_savings(rows, "M0")


CHECKS = (claim_updates, claim_inefficiency, claim_savings, claim_savings_m0, claim_growth,
          claim_combined_best, claim_time)


def evaluate(summaries) -> list:
    """Every claim's row, from the run summaries of a results file."""
    rows = analysis.summary_rows(summaries)
    return [check(rows) for check in CHECKS]

"""Readable tables of run summaries (the dicts of ``Result.to_dict()``)."""
from __future__ import annotations

import math


def _fmt(value, kind):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "sci":
        return f"{value:.3g}"
    if kind == "f2":
        return f"{value:.2f}"
    if kind == "f1":
        return f"{value:.1f}"
    if kind == "acc":
        return f"{100 * value:.2f}%"
    return str(value)


def rule_label(summary: dict) -> str:
    params = summary.get("rule_params") or {}
    shown = [f"{k}={v}" for k, v in params.items()
             if v is not None and k not in ("selection",)]
    return str(summary.get("rule", "?")) + (f" ({', '.join(shown)})" if shown else "")


def hardware_columns(summaries):
    """Preset names priced in any of the runs, in first-seen order."""
    names = []
    for s in summaries:
        for name in (s.get("hardware") or {}):
            if name not in names:
                names.append(name)
    return names


def _is_biology(summaries, name):
    return any(((s.get("hardware") or {}).get(name) or {}).get("kind") == "biology"
               for s in summaries)


def _hardware_cell(rep) -> str:
    """ATP for a biological synapse; joules for a device, with the share of updates below its
    resolution (not written)."""
    if rep and rep.get("kind") == "biology":
        return _fmt((rep.get("extra") or {}).get("atp"), "sci")
    cell = _fmt(rep.get("energy_j") if rep else None, "sci")
    writes = ((rep or {}).get("counts") or {}).get("writes") or 0
    if writes and rep.get("lost_updates"):
        cell += f" ({100 * rep['lost_updates'] / writes:.0f}% lost)"
    return cell


def format_table(summaries, hardware=True) -> str:
    """One row per run: rule, status, epochs, M0, M1, M1_min, M1/M1_min, seconds (+ joules)."""
    head = ["rule", "hidden", "seed", "status", "epochs", "acc", "M0", "M1", "M1_min",
            "M1/M1_min", "seconds"]
    hw = hardware_columns(summaries) if hardware else []
    head += [f"{name} [{'ATP' if _is_biology(summaries, name) else 'J'}]" for name in hw]
    rows = [head]
    for s in summaries:
        e = s.get("energy") or {}
        tot = lambda k: (e.get(k) or {}).get("total")  # noqa: E731
        converged = s.get("status") == "converged"
        row = [rule_label(s), str(s.get("hidden")), str(s.get("seed")), s.get("status"),
               _fmt(s.get("epochs"), "f2") if converged else f">{_fmt(s.get('epochs'), 'f2')}",
               _fmt(s.get("test_accuracy"), "acc"), _fmt(tot("M0"), "sci"),
               _fmt(tot("M1"), "sci"), _fmt(tot("M1_min"), "sci"),
               _fmt(e.get("inefficiency_M1"), "f1"), _fmt(s.get("train_seconds"), "f1")]
        row += [_hardware_cell((s.get("hardware") or {}).get(name)) for name in hw]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _lifetime_device(summaries, names):
    """The first priced technology with a finite endurance (its lifetime is shown)."""
    for name in names:
        for s in summaries:
            runs = ((s.get("hardware") or {}).get(name) or {}).get("lifetime_runs")
            if runs is not None and math.isfinite(runs):
                return name
    return None


def format_hardware_table(summaries) -> str:
    """One row per run: joules per technology (ATP for biology), with the share of updates
    below the device's resolution; rows touched per sample and writes per row (from the first
    electronic technology: every technology sees the same writes); and the lifetime in
    training runs on the first technology with a finite endurance."""
    names = hardware_columns(summaries)
    if not names:
        return ""
    electronic = [n for n in names if not _is_biology(summaries, n)]
    wear = _lifetime_device(summaries, electronic)
    head = ["rule", "seed"] + [f"{n} [{'ATP' if _is_biology(summaries, n) else 'J'}]"
                               for n in names]
    head += ["rows/sample", "writes/row"]
    if wear:
        head.append(f"lifetime {wear} [runs]")
    rows = [head]
    for s in summaries:
        hw = s.get("hardware") or {}
        row = [rule_label(s), str(s.get("seed"))]
        row += [_hardware_cell(hw.get(name)) for name in names]
        counts = ((hw.get(electronic[0]) or {}).get("counts") or {}) if electronic else {}
        rows_touched, writes = counts.get("rows_touched"), counts.get("writes")
        samples = s.get("samples") or 0
        row.append(_fmt(rows_touched / samples if rows_touched is not None and samples
                        else None, "f1"))
        row.append(_fmt(writes / rows_touched if writes and rows_touched else None, "f1"))
        if wear:
            row.append(_fmt((hw.get(wear) or {}).get("lifetime_runs"), "sci"))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

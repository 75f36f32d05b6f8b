"""Figures and the summary table of a results file: every figure is produced, is a real
image, and the show command prints (and --json returns) the aggregates."""
import json
import tomllib
from pathlib import Path

import matplotlib.image
import pytest

from neuroenergy import cli
from neuroenergy.executors import run_point
from neuroenergy.figures import plot_results
from neuroenergy.plots import plot_comparison
from neuroenergy.store import ResultsWriter, error_record, read_runs
from neuroenergy.sweep import parse_sweep
from sweep_support import make_tiny_mnist, tiny_sweep

RULES = ['name = "backprop"', 'name = "top-fraction"\np = 0.1', 'name = "path"\nk = 5',
         'name = "combined"\nk = 5\np = 0.3']
FIGURES = {"energy_vs_hidden.png", "inefficiency_vs_hidden.png", "epochs_vs_hidden.png",
           "savings_vs_hidden.png", "energy_accuracy.png", "hardware_joules.png",
           "write_maps.png"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A small file: four rules, two sizes, two seeds, mostly converged at a low target,
    with (synthetic) hardware costs per run and one error run."""
    folder = tmp_path_factory.mktemp("plots")
    tiny = make_tiny_mnist(folder / "data")
    sweep = parse_sweep(tomllib.loads(tiny_sweep(tiny, hidden=(20, 30), seeds=2, rules=RULES,
                                                 target=0.6)))
    out = folder / "r.h5"
    with ResultsWriter(out) as writer:
        for point in sweep.points:
            record = run_point({"config": point.config, "key": point.key,
                                "store_weights": False})
            m1 = record["summary"]["energy"]["M1"]["total"]
            record["summary"]["hardware"] = {"pcm": {"energy_j": 1e-9 * m1},
                                             "sram-22nm": {"energy_j": 3e-12 * m1}}
            writer.add(record)
        writer.add(error_record(sweep.points[0].config, "MemoryError: synthetic", key="err"))
    return out


@pytest.fixture(scope="module")
def figures(results, tmp_path_factory):
    """The figures of ``results`` made by `neuroenergy plot` (once: drawing takes seconds)."""
    import contextlib
    import io
    folder = tmp_path_factory.mktemp("figs")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["plot", str(results), "--out", str(folder), "--maps-hidden", "30"])
    assert code == 0
    return [Path(line) for line in printed.getvalue().split()]


def test_every_figure_is_made_and_readable(figures):
    assert {p.name for p in figures} == FIGURES
    for p in figures:
        image = matplotlib.image.imread(p)
        assert image.shape[0] > 300 and image.shape[1] > 500, p.name
        assert image[..., :3].std() > 0.05, f"{p.name} looks blank"


def test_show_command(results, capsys):
    assert cli.main(["show", str(results)]) == 0
    out = capsys.readouterr().out
    assert "17 runs" in out and "1 error" in out
    assert "top-fraction (p=0.1)" in out and "combined (k=5, p=0.3)" in out
    assert "MemoryError: synthetic" in out
    assert cli.main(["show", str(results), "--json"]) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=pytest.fail)  # strict JSON
    assert data["runs"] == 17 and data["counts"]["error"] == 1
    assert len(data["groups"]) == 8
    assert {g["hidden"] for g in data["groups"]} == {20, 30}
    assert cli.main(["show", str(results), "--runs"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) >= 17 + 2


def test_a_file_without_finished_runs_plots_nothing(tmp_path, capsys):
    from neuroenergy.config import RunConfig
    out = tmp_path / "r.h5"
    with ResultsWriter(out) as writer:
        writer.add(error_record(RunConfig(hidden=20).to_dict(), "boom", key="k"))
    assert plot_results(out, tmp_path / "figs") == []
    assert cli.main(["plot", str(out), "--out", str(tmp_path / "figs")]) == 0
    assert "no finished runs" in capsys.readouterr().err


def test_comparison_figure_still_works(results, tmp_path):
    summaries = [s for s in read_runs(results) if s["status"] != "error" and s["hidden"] == 20]
    path = plot_comparison(summaries, tmp_path / "cmp.png")
    assert matplotlib.image.imread(path).shape[0] > 300


def test_study_grid_and_report(results, figures, tmp_path):
    import tomllib
    from neuroenergy.reproduce import study_sweep_text, write_report
    full = parse_sweep(tomllib.loads(study_sweep_text(quick=False)))
    quick = parse_sweep(tomllib.loads(study_sweep_text(quick=True)))
    assert len(full.points) == 4 * 5 * 3 and len(quick.points) == 4 * 3 * 2
    assert {p.config["hidden"] for p in full.points} == {100, 300, 1000, 3000, 10000}
    report = write_report(results, tmp_path, figures, {"executor": "serial", "wall_s": 60.0,
                                                      "run": 16, "skipped": 0}, quick=True)
    text = report.read_text()
    assert "## Claims" in text and "10^8" in text and "Savings grow with network size" in text
    verdicts = [line.rsplit("|", 2)[-2] for line in text.splitlines()
                if line.startswith("| ") and "**" in line]
    assert len(verdicts) == 7
    assert all(any(v in cell for v in ("supported", "partly", "no data")) for cell in verdicts)
    for fig in figures:
        assert f"(figures/{fig.name})" in text


def _summary(rule, hidden, seed, m1, lr_out=None, **params):
    config = {"hidden": hidden, "seed": seed, "lr_out": lr_out, "lr": 0.01,
              "rule": {"name": rule, **params}}
    return {"rule": rule, "rule_params": params, "hidden": hidden, "seed": seed,
            "status": "converged", "epochs": 1.0, "config": config,
            "energy": {"M1": {"total": m1}, "M0": {"total": 10 * m1}}}


def test_series_follow_a_rule_across_sizes_and_pair_with_backprop():
    from neuroenergy import analysis
    runs = []
    for seed in (0, 1):
        for hidden, k, lr_out in ((100, 50, None), (1000, 50, None), (10000, 200, 0.003)):
            runs.append(_summary("backprop", hidden, seed, 100.0 * hidden, lr_out))
            runs.append(_summary("path", hidden, seed, 50.0 * hidden, lr_out, k=k))
            for p in (0.1, 0.2):  # a setting that varies within a size is its own series
                runs.append(_summary("top-fraction", hidden, seed, 25.0 * hidden, lr_out, p=p))
    series = analysis.series_by_rule(runs)
    # k grows with the size and lr_out is set for the largest size only: still one line each
    assert list(series) == ["backprop", "top-fraction (p=0.1)", "top-fraction (p=0.2)",
                            "path (k=50-200)"]
    assert all(list(s) == [100, 1000, 10000] for s in series.values())
    saving = analysis.savings(runs)
    assert saving["path (k=50-200)"][10000][:2] == (2.0, 2.0)
    assert saving["top-fraction (p=0.1)"][100][0] == 4.0
    lr_runs = runs + [_summary("backprop", 100, 0, 1.0, None) | {
        "config": {**runs[0]["config"], "lr": 0.02}}]
    assert "backprop [lr=0.02]" in analysis.series_by_rule(lr_runs)

"""The energy-time frontier: grouping, Pareto front, best settings, the baseline comparison,
and the command line."""
import pytest

from neuroenergy.cli import main
from neuroenergy.frontier import (best_per_family, collect, format_frontier, pareto,
                                  rule_text, versus_baseline)


def fake(rule, params, seed, epochs, m1, status="converged", hidden=100):
    return {"rule": rule, "rule_params": params, "seed": seed, "hidden": hidden,
            "status": status, "epochs": epochs, "run_id": f"{rule}{params}{seed}",
            "energy": {"M1": {"total": m1}, "inefficiency_M1": m1 / 100},
            "config": {"hidden": hidden, "seed": seed, "lr": 0.01}, "hardware": {}}


RUNS = [
    *[fake("combined", {"k": 50, "p": 0.2}, s, 1.3 + 0.01 * s, 660 + s) for s in range(3)],
    *[fake("combined", {"k": 50, "p": 0.05}, s, 2.0 + 0.01 * s, 500 + s) for s in range(3)],
    *[fake("backprop", {}, s, 0.7 + 0.01 * s, 620 + s) for s in range(3)],
    *[fake("lazy", {"base": {"name": "combined", "k": 50, "p": 0.2}, "margin": 0.0}, s,
           1.2 + 0.01 * s, 240 + s) for s in range(3)],
    *[fake("top-fraction", {"p": 0.01}, s, 3.0, 400, "not_converged" if s == 2 else
           "converged") for s in range(3)],
]


def test_grouping_front_and_best():
    by_hidden = collect(RUNS)
    settings = by_hidden[100]
    assert len(settings) == 5
    front = [s.label for s in pareto(settings)]
    assert front == ["backprop", "lazy[0](combined(k=50, p=0.2))"]
    best = best_per_family(settings)
    assert list(best) == ["lazy+combined", "combined", "backprop"]  # by energy
    assert best["combined"].label == "combined(k=50, p=0.05)"
    failed = [s for s in settings if not s.all_converged]
    assert [s.label for s in failed] == ["top-fraction(p=0.01)"]


def test_baseline_comparison_at_equal_learning_time():
    rows = versus_baseline(collect(RUNS)[100])
    by_label = {r["setting"].label: r for r in rows}
    lazy = by_label["lazy[0](combined(k=50, p=0.2))"]
    # 1.21 epochs: faster than every combined setting, so compared with the fastest one
    assert lazy["faster_than_every_baseline"] and lazy["reference"].label == \
        "combined(k=50, p=0.2)"
    assert lazy["clear"] and lazy["ratio"] == pytest.approx(661 / 241)
    bp = by_label["backprop"]
    assert bp["clear"] and bp["wins"]
    text = format_frontier(collect(RUNS))
    assert "clearly beat combined" in text and "Winner (lowest mean M1): lazy[0]" in text


def test_rule_text():
    assert rule_text("caching", {"theta": 0.001, "tau": None, "selection": "random"}) == \
        "caching(theta=0.001)"
    assert rule_text("lazy", {"base": {"name": "backprop"}, "margin": 0.5}) == \
        "lazy[0.5](backprop)"


def test_frontier_command_on_real_runs(tmp_path, capsys, mnist):
    from neuroenergy.config import RunConfig
    from neuroenergy.rules import make_rule
    from neuroenergy.store import write_run
    from neuroenergy.train import train
    out = tmp_path / "r.h5"
    for rule in (make_rule("combined", k=10, p=0.5),
                 make_rule("lazy", base=make_rule("combined", k=10, p=0.5)),
                 make_rule("caching", theta=0.0005)):
        config = RunConfig(rule=rule, hidden=20, target_accuracy=0.5, max_epochs=0.03,
                           eval_every=300)
        write_run(out, train(config, mnist))
    assert main(["frontier", str(out), "--wear"]) == 0
    text = capsys.readouterr().out
    assert "## 20 hidden units" in text and "Pareto front" in text
    assert "lazy[0](combined(k=10, p=0.5))" in text
    assert main(["frontier", str(out), "--json"]) == 0
    assert '"20"' in capsys.readouterr().out


def test_rule_options_on_the_command_line():
    from neuroenergy.cli import build_parser, config_from_args
    args = build_parser().parse_args(["train", "--rule", "caching", "--param", "theta=0.002",
                                      "--param", "consolidation=neuron", "--lazy", "0.5",
                                      "--hidden", "300,100", "--stop-on", "validation"])
    config = config_from_args(args)
    assert config.hidden == (300, 100) and config.stop_on == "validation"
    assert config.rule.name == "lazy" and config.rule.margin == 0.5
    assert config.rule.base.theta == 0.002 and config.rule.base.consolidation == "neuron"
    assert main(["train", "--rule", "caching", "--param", "theta", "--hidden", "20"]) == 2

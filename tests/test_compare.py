"""``neuroenergy compare``: priced on the default technologies unless told otherwise, and the
hardware table it prints."""
import json

from neuroenergy import cli
from neuroenergy.hardware import DEFAULT_COMPARE_PRESETS
from neuroenergy.report import format_hardware_table
from neuroenergy.store import read_runs


def _run(argv, capsys):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return (code, *capsys.readouterr())


SHORT = ["--hidden", "12", "--max-epochs", "0.01", "--eval-every", "600"]


def test_compare_prices_the_default_technologies(tmp_path, capsys, mnist):
    out = tmp_path / "c.h5"
    code, text, err = _run(["compare", *SHORT, "--out", out], capsys)
    assert code == 0, err
    table = text.split("Writes priced on hardware")[1]
    for name in DEFAULT_COMPARE_PRESETS:
        assert name in table
    assert "biology-low [ATP]" in table and "sram-22nm [J]" in table
    runs = read_runs(out)
    assert len(runs) == 4
    for run in runs:
        assert set(run["hardware"]) == set(DEFAULT_COMPARE_PRESETS)
        assert run["hardware"]["sram-22nm"]["counts"]["writes"] == run["energy"]["M0"]["total"]
        assert run["hardware"]["sram-22nm"]["energy_j"] > 0.0


def test_compare_without_hardware(tmp_path, capsys, mnist):
    out = tmp_path / "c.h5"
    code, text, err = _run(["compare", *SHORT, "--no-hardware", "--json", "--out", out],
                           capsys)
    assert code == 0, err
    summaries = json.loads(text.splitlines()[-1])
    assert len(summaries) == 4 and not any(s.get("hardware") for s in summaries)


def test_hardware_table_numbers():
    def report(kind, energy, writes, rows, lost=0, lifetime=None, atp=None):
        return {"kind": kind, "energy_j": energy, "lost_updates": lost,
                "counts": {"writes": writes, "rows_touched": rows},
                "lifetime_runs": lifetime, "extra": {"atp": atp} if atp else {}}
    summaries = [{"rule": "top-fraction", "rule_params": {"p": 0.01}, "seed": 3, "samples": 10,
                  "hardware": {"sram": report("digital", 2e-6, 400.0, 50.0, lost=100),
                               "rram": report("analog", 1e-9, 400.0, 50.0, lifetime=12.5),
                               "bio": report("biology", None, 400.0, 0.0, atp=7.0e8)}}]
    lines = format_hardware_table(summaries).splitlines()
    assert lines[0].split() == ["rule", "seed", "sram", "[J]", "rram", "[J]", "bio", "[ATP]",
                                "rows/sample", "writes/row", "lifetime", "rram", "[runs]"]
    row = lines[2]
    assert row.startswith("top-fraction (p=0.01)")
    # 100 of 400 writes lost; 50 rows in 10 samples; 400 writes in 50 rows
    for cell in ("2e-06 (25% lost)", "1e-09", "7e+08", "5.0", "8.0", "12.5"):
        assert cell in row
    assert format_hardware_table([{"rule": "backprop"}]) == ""


def test_compare_hardware_option_still_chooses(tmp_path, capsys, mnist):
    code, text, err = _run(["compare", *SHORT, "--hardware", "sram-22nm,agsi", "--json",
                            "--out", tmp_path / "c.h5"], capsys)
    assert code == 0, err
    summaries = json.loads(text.splitlines()[-1])
    assert all(set(s["hardware"]) == {"sram-22nm", "agsi"} for s in summaries)


def test_compare_in_worker_processes_gives_the_serial_numbers(tmp_path, capsys, mnist):
    """--workers 2 trains the runs in two processes; every number (weights' energy, hardware
    tallies, curves) is the one this process computes with --workers 1."""
    from sweep_support import deterministic
    results = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.h5"
        code, text, err = _run(["compare", *SHORT, "--hardware", "sram-22nm,pcm", "--json",
                                "--workers", workers, "--out", out], capsys)
        assert code == 0, err
        results[workers] = [deterministic(s) for s in json.loads(text.splitlines()[-1])]
        assert len(read_runs(out)) == 4
    for serial, parallel in zip(results[1], results[2]):
        for s in (serial, parallel):
            s.pop("run_id")
            s["curves"].pop("seconds")  # wall time at each evaluation
        assert serial == parallel


def test_compare_run_that_fails_in_a_worker_is_reported_then_resumed(tmp_path, capsys, mnist,
                                                                     monkeypatch):
    """A worker that dies on one run: the other runs are stored, the failure is reported
    (exit 1) and not stored, and --resume then trains just that run."""
    from neuroenergy.executors import FAULT_ENV
    args = ["compare", *SHORT, "--no-hardware", "--workers", "2"]
    code, _, err = _run([*args, "--out", tmp_path / "keys.h5"], capsys)
    assert code == 0, err
    victim = next(s for s in read_runs(tmp_path / "keys.h5") if s["rule"] == "path")
    out = tmp_path / "c.h5"
    monkeypatch.setenv(FAULT_ENV, f"die:{victim['key']}")
    code, _, err = _run([*args, "--out", out], capsys)
    assert code == 1
    assert "path seed 0 failed: a worker process died" in err
    assert f"1 of the 4 runs failed; failed runs are not stored in {out}: rerun the same " \
           "command with --resume" in err
    assert sorted(s["rule"] for s in read_runs(out)) == ["backprop", "combined", "top-fraction"]
    monkeypatch.delenv(FAULT_ENV)
    code, _, err = _run([*args, "--resume", "--out", out], capsys)
    assert code == 0, err
    runs = read_runs(out)
    assert len(runs) == 4 and {s["status"] for s in runs} <= {"converged", "not_converged"}
    resumed = next(s for s in runs if s["rule"] == "path")
    assert resumed["energy"] == victim["energy"]  # the run it would have been


def test_compare_where_every_run_fails_exits_1_and_says_so(tmp_path, capsys, mnist,
                                                           monkeypatch):
    """Every run failing is a failure of the runs (exit 1, each reported), not bad input
    (exit 2); nothing is stored and no figure drawn."""
    from neuroenergy.executors import FAULT_ENV
    monkeypatch.setenv(FAULT_ENV, "raise:*")
    out = tmp_path / "c.h5"
    code, stdout, err = _run(["compare", *SHORT, "--no-hardware", "--workers", "2", "--out",
                              out], capsys)
    assert code == 1
    assert err.count("failed: RuntimeError: injected failure") == 4
    assert "every run of this comparison failed (no figure drawn)" in err
    assert "--resume" in err and "rule" not in stdout
    assert (not out.exists() or read_runs(out) == []) and not out.with_suffix(".png").exists()


def test_presets_with_equal_parameters_are_priced_once_each_as_if_alone(mnist):
    """The default set's eight presets have five distinct kernel vectors, and the kernels
    price each once; every preset's tallies and energy must be those of a run that prices it
    alone (a dense rule and a sparse one: the two write paths)."""
    from neuroenergy import RunConfig, train
    from neuroenergy.hardware import HardwareTally
    from neuroenergy.rules import Backprop, TopFraction
    tally = HardwareTally(DEFAULT_COMPARE_PRESETS)
    assert tally.params.shape[0] == 5
    assert [DEFAULT_COMPARE_PRESETS[d] for d in (2, 5, 7)] == ["fefet", "stt-mram",
                                                              "biology-high"]
    assert list(tally.slot[[2, 5, 7]]) == list(tally.slot[[0, 4, 6]])
    for rule in (Backprop(), TopFraction(p=0.05)):
        short = dict(rule=rule, hidden=12, max_epochs=0.01, eval_every=600)
        together = train(RunConfig(hardware=DEFAULT_COMPARE_PRESETS, **short), mnist)
        for name in ("fefet", "stt-mram", "biology-high", "rram-neurosim"):
            alone = train(RunConfig(hardware=(name,), **short), mnist)
            assert together.hardware[name]["tally"] == alone.hardware[name]["tally"], name
            assert together.hardware[name]["energy_j"] == alone.hardware[name]["energy_j"]

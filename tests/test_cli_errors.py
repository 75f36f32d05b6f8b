"""Every command-line option with a bad value: one line naming the option, the allowed values
and what was given; exit code 2; no traceback (``--debug`` shows it).

Everything runs in-process through ``neuroenergy.cli.main`` and fails before any training or
data loading, so the whole file takes a few seconds.
"""
import h5py
import numpy as np
import pytest

from neuroenergy import cli
from neuroenergy.config import RunConfig
from neuroenergy.data import Dataset
from neuroenergy.errors import NeuroenergyError
from neuroenergy.rules import Path as PathRule
from neuroenergy.store import ResultsWriter, write_run
from neuroenergy.train import train


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of ``neuroenergy ARGV`` run in this process."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, expected):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results file with one finished run (20 hidden units, a tiny synthetic data set)."""
    rng = np.random.default_rng(0)
    data = Dataset("synthetic", rng.normal(0, 1, (200, 30)).astype(np.float32),
                   rng.integers(0, 10, 200), rng.normal(0, 1, (50, 30)).astype(np.float32),
                   rng.integers(0, 10, 50))
    result = train(RunConfig(rule=PathRule(k=5), hidden=20, max_epochs=1.0, eval_every=100,
                             target_accuracy=1.0), data=data)
    path = tmp_path_factory.mktemp("results") / "r.h5"
    write_run(path, result)
    return path


# (arguments, texts the one error line must hold: the option, the allowed values, the value)
TRAIN_OPTIONS = [
    (["--lr", "20"], ["'--lr' option", "(0, 10]", "Got 20.0"]),
    (["--lr", "-1"], ["'--lr' option", "(0, 10]", "Got -1.0"]),
    (["--lr", "nan"], ["'--lr' option", "(0, 10]", "Got nan"]),
    (["--lr", "abc"], ["--lr", "invalid float value", "'abc'"]),
    (["--lr-out", "0"], ["'--lr-out' option", "(0, 10]", "Got 0.0"]),
    (["--init-std", "-1"], ["'--init-std' option", "[0, 10]", "Got -1.0"]),
    (["--hidden", "1"], ["'--hidden' option", "[2, 1000000]", "Got 1"]),
    (["--hidden", "100,1"], ["'--hidden' option", "[2, 1000000]", "Got 1"]),
    (["--hidden", "300,x"], ["--hidden", "integers separated by commas", "'300,x'"]),
    (["--hidden", ","], ["--hidden", "at least one size", "','"]),
    (["--seed", "-1"], ["'--seed' option", "[0, 9223372036854775807]", "Got -1"]),
    (["--seed", "1.5"], ["--seed", "expected an integer", "'1.5'"]),
    (["--target", "1.5"], ["'--target' option", "(0, 1]", "Got 1.5"]),
    (["--target", "0"], ["'--target' option", "(0, 1]", "Got 0.0"]),
    (["--max-epochs", "0"], ["'--max-epochs' option", "(0, 1000]", "Got 0.0"]),
    (["--max-epochs", "inf"], ["'--max-epochs' option", "(0, 1000]", "Got inf"]),
    (["--eval-every", "0"], ["'--eval-every' option", "[1, 10000000]", "Got 0"]),
    (["--eval-every", "ten"], ["--eval-every", "expected an integer", "'ten'"]),
    (["--stop-on", "train"], ["'--stop-on' option", "'test', 'validation'", "'train'"]),
    (["--validation-size", "0"], ["'--validation-size' option", "[1, 10000000]", "Got 0"]),
    (["--activation", "tanh"], ["'--activation' option", "'leaky_relu', 'relu', 'sigmoid'",
                                "'tanh'"]),
    (["--loss", "hinge"], ["'--loss' option", "'mse', 'softmax_ce'", "'hinge'"]),
    (["--alpha", "3"], ["'--alpha' option", "[0, 2]", "Got 3.0"]),
    (["--rule", "nosuch"], ["'--rule' option", "'backprop', 'top-fraction', 'path'",
                            "'nosuch'"]),
    (["--rule", "top-fraction", "--p", "1.5"], ["'--p' option", "'top-fraction'", "(0, 1]",
                                                "Got 1.5"]),
    (["--rule", "top-fraction", "--p", "0"], ["'--p' option", "(0, 1]", "Got 0.0"]),
    (["--rule", "top-fraction", "--p-out", "2"], ["'--p-out' option", "(0, 1]", "Got 2.0"]),
    # k >= hidden (unit 0 is the bias, so a path has at most hidden - 1 units)
    (["--rule", "path", "--k", "100", "--hidden", "100"], ["'--k' option", "'path'", "[1, 99]",
                                                           "Got 100"]),
    (["--rule", "combined", "--k", "20", "--hidden", "20"], ["'--k' option", "[1, 19]",
                                                             "Got 20"]),
    (["--rule", "path", "--k", "30", "--hidden", "300,20"], ["'--k' option", "[1, 19]",
                                                             "Got 30"]),
    (["--rule", "path", "--k", "0"], ["'--k' option", "[1, inf]", "Got 0"]),
    (["--rule", "path", "--k-fraction", "1.5"], ["'--k-fraction' option", "(0, 1]",
                                                 "Got 1.5"]),
    (["--rule", "path", "--k", "5", "--k-fraction", "0.5"], ["exactly one of 'k'", "k=5",
                                                             "k_fraction=0.5"]),
    (["--rule", "path", "--path-selection", "middle"], ["'--path-selection' option",
                                                        "'random', 'first'", "'middle'"]),
    # p with a rule that has no p; p_out without a top-fraction
    (["--rule", "backprop", "--p", "0.1"], ["rule 'backprop' takes no parameters", "got p,"]),
    (["--rule", "path", "--p", "0.1"], ["rule 'path' takes the parameters k, k_fraction, "
                                        "selection", "got p,"]),
    (["--p-out", "0.5"], ["rule 'backprop' takes no parameters", "got p_out"]),
    (["--rule", "path", "--k", "5", "--p-out", "0.5"], ["rule 'path'", "got p_out"]),
    (["--param", "theta"], ["'--param' option", "NAME=VALUE", "'theta'"]),
    (["--rule", "accumulate", "--param", "theta=-1"], ["'--param theta=...' option",
                                                      "'accumulate'", "(0, inf]", "Got -1"]),
    (["--rule", "accumulate", "--param", "nosuch=1"], ["rule 'accumulate' takes the "
                                                       "parameters", "got nosuch"]),
    (["--lazy", "nan"], ["'--lazy' option", "'lazy'", "Got nan"]),
    (["--hardware", "nosuch"], ["'--hardware' option", "rram-ideal", "'nosuch'"]),
    (["--hardware", "pcm,nosuch"], ["'--hardware' option", "'nosuch'"]),
    (["--hardware-mode", "chip"], ["'--hardware-mode' option", "'accounting', 'in-the-loop'",
                                   "'chip'"]),
    # in the loop without hardware
    (["--hardware-mode", "in-the-loop"], ["'--hardware-mode in-the-loop'", "--hardware",
                                          "Got no --hardware"]),
    (["--dataset", "/nonexistent/folder"], ["/nonexistent/folder does not exist", "'mnist'",
                                            "'fashion-mnist'"]),
    (["--out", "/nonexistent/folder/r.h5"], ["'--out' option", "/nonexistent/folder",
                                             "does not exist"]),
    (["--no-such-option"], ["unrecognized arguments: --no-such-option"]),
]


@pytest.mark.parametrize("argv, expected", TRAIN_OPTIONS,
                         ids=[" ".join(a) for a, _ in TRAIN_OPTIONS])
def test_train_options(argv, expected, capsys):
    code, out, err = run_cli(["train", *argv], capsys)
    assert_user_error(code, err, expected)
    assert out == ""


COMPARE_OPTIONS = [
    (["--seeds", "0"], ["'--seeds' option", ">= 1", "Got 0"]),
    (["--workers", "0"], ["'--workers' option", ">= 1", "Got 0"]),
    (["--seeds", "x"], ["--seeds", "invalid int value", "'x'"]),
    (["--hidden", "1"], ["'--hidden' option", "[2, 1000000]", "Got 1"]),
    (["--lr", "50"], ["'--lr' option", "(0, 10]", "Got 50.0"]),
    (["--target", "2"], ["'--target' option", "(0, 1]", "Got 2.0"]),
    (["--hardware", "nosuch"], ["'--hardware' option", "'nosuch'"]),
    (["--no-hardware", "--hardware-mode", "in-the-loop"], ["'--hardware-mode in-the-loop'",
                                                           "Got no --hardware"]),
    (["--rule", "path"], ["unrecognized arguments: --rule path"]),
]


@pytest.mark.parametrize("argv, expected", COMPARE_OPTIONS,
                         ids=[" ".join(a) for a, _ in COMPARE_OPTIONS])
def test_compare_options(argv, expected, capsys, tmp_path):
    code, _, err = run_cli(["compare", "--out", tmp_path / "c.h5", *argv], capsys)
    assert_user_error(code, err, expected)
    assert not (tmp_path / "c.h5").exists()


def test_sweep_options(capsys, tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text("hidden = 20\n")
    out = tmp_path / "r.h5"
    cases = [
        ([tmp_path / "missing.toml", "--out", out], ["cannot read sweep file", "missing.toml"]),
        ([sweep], ["required", "--out"]),
        ([sweep, "--out", out, "--executor", "gpu"], ["--executor", "'serial', 'processes', "
                                                      "'dask'", "'gpu'"]),
        ([sweep, "--out", out, "--workers", "two"], ["--workers", "invalid int value",
                                                     "'two'"]),
        ([sweep, "--out", out, "--dask-local", "x"], ["--dask-local", "invalid int value"]),
        ([sweep, "--out", tmp_path], ["'--out' option", "folder"]),
    ]
    for argv, expected in cases:
        code, _, err = run_cli(["sweep", *argv], capsys)
        assert_user_error(code, err, expected)
    assert not out.exists()


def test_hardware_options(results, capsys, tmp_path):
    cases = [
        ([results, "--w-max", "-1"], ["'--w-max' option", "(0, 100]", "Got -1.0"]),
        ([results, "--w-max", "nan"], ["'--w-max' option", "(0, 100]", "Got nan"]),
        ([results, "--w-max", "x"], ["--w-max", "invalid float value", "'x'"]),
        ([results, "--presets", "nosuch"], ["'--presets' option", "rram-ideal", "'nosuch'"]),
        ([tmp_path / "missing.h5"], ["missing.h5 does not exist"]),
    ]
    for argv, expected in cases:
        code, _, err = run_cli(["hardware", *argv], capsys)
        assert_user_error(code, err, expected)


def test_show_and_plot_options(results, capsys, tmp_path):
    cases = [
        (["show"], ["required", "results"]),
        (["show", tmp_path / "missing.h5"], ["missing.h5 does not exist"]),
        (["show", results, "--color"], ["unrecognized arguments: --color"]),
        (["plot", results], ["required", "--out"]),
        (["plot", results, "--out", tmp_path, "--maps-hidden", "x"], ["--maps-hidden",
                                                                      "invalid int value"]),
        (["plot", results, "--out", tmp_path, "--maps-hidden", "7"], [
            "'--maps-hidden' option", "one of 20", "Got 7"]),
        (["plot", tmp_path / "missing.h5", "--out", tmp_path], ["does not exist"]),
    ]
    for argv, expected in cases:
        code, _, err = run_cli(argv, capsys)
        assert_user_error(code, err, expected)
    assert not list(tmp_path.glob("*.png"))


def test_frontier_options(results, capsys):
    cases = [
        (["--tolerance", "-1"], ["'--tolerance' option", "[0, inf]", "Got -1.0"]),
        (["--tolerance", "x"], ["--tolerance", "invalid float value"]),
        (["--energy", "joules"], ["'--energy' option", "M0, M0_min, M1", "'joules'"]),
        (["--baseline", "nosuch"], ["'--baseline' option", "combined", "'nosuch'"]),
        (["--hidden", "7"], ["'--hidden' option", "one of 20", "Got 7"]),
    ]
    for argv, expected in cases:
        code, _, err = run_cli(["frontier", results, *argv], capsys)
        assert_user_error(code, err, expected)


SPIKING_OPTIONS = [
    (["spiking"], ["needs one of: convert, train, compare"]),
    (["spiking", "train", "--hidden", "x"], ["--hidden", "expected an integer", "'x'"]),
    (["spiking", "train", "--hidden", "0"], ["'hidden'", "[2, 100000]", "Got 0"]),
    (["spiking", "train", "--duration", "5parsecs"], ["--duration", "100ms or 0.1s",
                                                      "'5parsecs'"]),
    (["spiking", "train", "--input", "noise"], ["'input'", "'regular', 'poisson'", "'noise'"]),
    (["spiking", "train", "--target", "gpu"], ["'target'", "'numpy', 'cython'", "'gpu'"]),
    (["spiking", "train", "--rule", "path", "--k", "500"], ["'k'", "[1, 99]", "Got 500"]),
    (["spiking", "train", "--rule", "backprop", "--p", "0.1"], ["takes no parameters",
                                                               "got p,"]),
    (["spiking", "compare", "--rules", "backprop,nosuch"], ["'rules' option", "top-fraction",
                                                           "'nosuch'"]),
    (["spiking", "convert", "/nonexistent/r.h5"], ["/nonexistent/r.h5 does not exist"]),
    (["spiking", "convert", "r.h5", "--readouts", "a,b"], ["--readouts", "'a'"]),
]


@pytest.mark.parametrize("argv, expected", SPIKING_OPTIONS,
                         ids=[" ".join(a) for a, _ in SPIKING_OPTIONS])
def test_spiking_options(argv, expected, capsys):
    code, _, err = run_cli(argv, capsys)
    assert_user_error(code, err, expected)


def test_unknown_command_and_no_command(capsys):
    code, _, err = run_cli(["trian"], capsys)
    assert_user_error(code, err, ["invalid choice: 'trian'", "'train'"])
    code, out, _ = run_cli([], capsys)
    assert code == 2 and "usage" in out


@pytest.mark.parametrize("damage, expected", [
    ("text", "not an HDF5 file"),
    ("truncated", "truncated"),
    ("newer", "newer neuroenergy"),
    ("locked", "being written by another process"),
])
def test_out_file_that_cannot_take_the_run_is_refused_before_training(results, tmp_path,
                                                                     capsys, damage, expected):
    out = tmp_path / "r.h5"
    if damage == "text":
        out.write_text("my notes\n")
    elif damage == "truncated":
        blob = results.read_bytes()
        out.write_bytes(blob[:len(blob) // 2])
    else:
        out.write_bytes(results.read_bytes())
    if damage == "newer":
        with h5py.File(out, "a") as f:
            f.attrs["format_version"] = 99
    before = out.read_bytes()
    # --dataset points nowhere: had the --out check come after data loading, the error
    # would be about the data set
    argv = ["train", "--out", out, "--dataset", tmp_path / "no-data"]
    if damage == "locked":
        with ResultsWriter(out):
            code, _, err = run_cli(argv, capsys)
    else:
        code, _, err = run_cli(argv, capsys)
    assert_user_error(code, err, [str(out), expected])
    assert out.read_bytes() == before


@pytest.mark.parametrize("argv", [
    ["train", "--lr", "20"],
    ["train", "--rule", "path", "--k", "100", "--hidden", "100"],
    ["train", "--dataset", "/nonexistent/folder"],
    ["compare", "--seeds", "0"],
    ["hardware", "/nonexistent/r.h5"],
    ["show", "/nonexistent/r.h5"],
    ["spiking", "train", "--hidden", "0"],
], ids=lambda a: " ".join(a))
def test_debug_shows_the_traceback(argv, capsys):
    with pytest.raises(NeuroenergyError):
        cli.main(["--debug", *argv])
    code, _, err = run_cli(argv, capsys)  # and without --debug: one line
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_debug_with_an_argparse_error_is_still_one_line(capsys):
    code, _, err = run_cli(["--debug", "train", "--lr", "x"], capsys)
    assert_user_error(code, err, ["--lr", "'x'"])

"""``neuroenergy spiking ...``: parsing, JSON on the last line, storage, and messages."""
import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from neuroenergy.errors import ConfigError, DependencyError
from neuroenergy.spiking.cli import add_spiking_parser, parse_ms

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pyparsing")


def run_cli(argv):
    """Parse ``argv`` with a parser that holds only the spiking command and run it."""
    parser = argparse.ArgumentParser(prog="neuroenergy")
    sub = parser.add_subparsers(dest="command")
    add_spiking_parser(sub)
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.fixture
def blocked_brian2(monkeypatch):
    """Simulate an installation without brian2."""
    monkeypatch.setitem(sys.modules, "brian2", None)


def test_parse_ms():
    assert parse_ms("100ms") == 100.0
    assert parse_ms("0.2s") == 200.0
    assert parse_ms("50") == 50.0
    assert parse_ms("500us") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="expected a time such as 100ms"):
        parse_ms("fast")


def test_package_imports_without_brian2():
    code = ("import sys; sys.modules['brian2'] = None\n"
            "import neuroenergy, neuroenergy.spiking, neuroenergy.spiking.cli\n"
            "from neuroenergy.spiking import SpikingConfig, LearnConfig\n"
            "SpikingConfig(); LearnConfig()\n"
            "try:\n"
            "    neuroenergy.spiking.brian()\n"
            "except neuroenergy.errors.DependencyError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "pip install neuroenergy[brian2]" in out


def test_missing_brian2_message(blocked_brian2, tmp_path, mnist):
    from neuroenergy.spiking import SpikingConfig, convert, simulate
    from neuroenergy.network import Network
    net = Network.initial(785, 5, 10, 0.1, np.random.default_rng(0))
    conv = convert(net, mnist.x_train[:100])
    with pytest.raises(DependencyError, match=r"pip install neuroenergy\[brian2\]"):
        simulate(conv, mnist.x_test[:2], SpikingConfig(target="numpy"))
    with pytest.raises(DependencyError, match=r"pip install neuroenergy\[brian2\]"):
        run_cli(["spiking", "train", "--samples", "5", "--target", "numpy"])


@pytest.mark.brian2
def test_convert_command_prints_json_and_stores(small_result, tmp_path, capsys):
    pytest.importorskip("brian2")
    import h5py
    from neuroenergy.store import write_run
    path = tmp_path / "run.h5"
    run_id = write_run(path, small_result)
    code = run_cli(["spiking", "convert", str(path), "--duration", "20ms", "--images", "4",
                    "--readouts", "10ms", "--target", "numpy", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("ann_accuracy", "snn_accuracy", "duration_ms", "synaptic_ops_per_image",
                "spikes_per_image", "energy_j_per_image"):
        assert key in report
    assert report["duration_ms"] == 20.0
    assert [r["duration_ms"] for r in report["rows"]] == [10.0, 20.0]
    with h5py.File(path, "r") as f:
        g = f[report["stored"]["group"]]
        assert g.name.startswith(f"/runs/{run_id}/spiking/convert/")
        np.testing.assert_allclose(g["duration_ms"][()], [10.0, 20.0])
        assert json.loads(g.attrs["report_json"])["snn_accuracy"] == report["snn_accuracy"]


@pytest.mark.brian2
def test_train_command(tmp_path, capsys):
    pytest.importorskip("brian2")
    import h5py
    out = tmp_path / "spiking.h5"
    code = run_cli(["spiking", "train", "--rule", "path", "--k", "3", "--hidden", "8",
                    "--samples", "10", "--duration", "10ms", "--chunk", "10",
                    "--eval-images", "0", "--target", "numpy", "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rule"] == "path" and summary["rule_params"]["k"] == 3
    assert summary["samples"] == 10
    assert summary["energy"]["M1"]["total"] >= summary["energy"]["M1_min"]["total"]
    with h5py.File(out, "r") as f:
        g = f[summary["stored"]["group"]]
        assert g["weights/w_in"].shape == (785, 8)
        assert json.loads(g.attrs["summary_json"])["rule"] == "path"


def test_bad_command_lines(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; train and store a run first"):
        run_cli(["spiking", "convert", str(tmp_path / "none.h5"), "--target", "numpy"])
    with pytest.raises(ConfigError, match="'target' parameter of SpikingConfig"):
        run_cli(["spiking", "convert", str(tmp_path / "none.h5"), "--target", "gpu"])
    with pytest.raises(ConfigError, match="'k' parameter of Path"):
        run_cli(["spiking", "train", "--rule", "path", "--k", "500", "--hidden", "10"])
    with pytest.raises(ConfigError, match="The 'rules' option must list rules"):
        run_cli(["spiking", "compare", "--rules", "backprop,hebb"])
    with pytest.raises(ConfigError, match="needs one of: convert, train, compare"):
        run_cli(["spiking"])

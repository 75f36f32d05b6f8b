"""Sweeps: validation before any run, stable keys, identical results from every executor,
kill-and-resume, interrupts, failing runs and dying workers."""
import json
import os
import signal
import sys
import tomllib

import h5py
import numpy as np
import pytest

from neuroenergy import cli
from neuroenergy.errors import ConfigError, StoreError
from neuroenergy.executors import FAULT_ENV
from neuroenergy.store import load_run, read_runs
from neuroenergy.sweep import load_sweep, parse_sweep, point_key, run_sweep
from sweep_support import deterministic, make_tiny_mnist, neuroenergy, tiny_sweep, wait_for_runs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny-mnist"))


def write_sweep(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("text, expected", [
    ("hiden = [20]\n", "unknown field 'hiden'. Did you mean 'hidden'?"),
    ("hidden = ['a']\n", "The 'hidden' parameter of RunConfig must be an int"),
    ("hidden = 20\nlr = 'fast'\n", "The 'lr' parameter of RunConfig must be a float"),
    ("hidden = []\n", "'hidden' is an empty list, so the grid is empty"),
    ("", "is empty"),
    ("hidden = 20\nrule = []\n", "the rule list is empty"),
    ("hidden = 20\nrule = 'hebb'\n", "has name 'hebb'; the rules are backprop"),
    ("hidden = 20\n[[rule]]\nname = 'path'\nk = 50\n", "1 of 1 grid points are invalid"),
    ("hidden = 20\n[[rule]]\nname = 'top-fraction'\np = [0.1, 2.0]\n",
     "The 'p' parameter of TopFraction must be a float in the range (0, 1]. Got 2.0"),
    ("hidden = 20\n[[rule]]\nname = 'backprop'\np = 0.1\n", "unknown field 'p'"),
    ("hidden = 20\n[sweep]\nstore_weight = true\n", "Did you mean 'store_weights'?"),
    ("hidden = [[20], 30]\n", "all scalars, all lists or all tables"),
    ("hidden = 20\nseed = 1\nseeds = 2\n", "not both"),
    ("hidden = [20\n", "is not valid TOML"),
])
def test_bad_sweep_files_fail_before_any_run(tmp_path, text, expected):
    path = write_sweep(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    assert expected in str(info.value)
    out = tmp_path / "r.h5"
    assert cli.main(["sweep", str(path), "--out", str(out)]) == 2
    assert not out.exists()


def test_invalid_points_are_all_reported(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_sweep({"hidden": [20, 30, 60, 80], "rule": [{"name": "path", "k": 40}]})
    message = str(info.value)
    assert "2 of 4 grid points are invalid; nothing was run" in message
    assert "hidden=20" in message and "hidden=30" in message


def test_grid_expansion_keys_and_overrides():
    sweep = parse_sweep({"hidden": [20, 30], "seeds": 2, "lr": 0.02, "rule": [
        "backprop", {"name": "top-fraction", "p": [0.1, 0.2]},
        {"name": "path", "k": 5, "hidden": 40, "seed": [7]}]})
    assert len(sweep.points) == 2 * 2 + 2 * 2 * 2 + 1
    path_points = [p for p in sweep.points if p.config["rule"]["name"] == "path"]
    assert [(p.config["hidden"], p.config["seed"]) for p in path_points] == [(40, 7)]
    assert all(p.config["lr"] == 0.02 for p in sweep.points)
    keys = [p.key for p in sweep.points]
    assert len(set(keys)) == len(keys)
    again = parse_sweep({"rule": ["backprop"], "lr": 0.02, "seeds": 2, "hidden": [30, 20]})
    assert {p.key for p in again.points} <= set(keys)  # key order and list order do not matter
    assert point_key(sweep.points[0].config) == sweep.points[0].key
    dup = parse_sweep({"hidden": [20, 20], "rule": "backprop"})
    assert len(dup.points) == 1 and dup.n_duplicates == 1


def test_hardware_list_is_one_value_and_list_of_lists_an_axis():
    one = parse_sweep({"hidden": 20, "hardware": ["pcm", "sram-22nm"]})
    assert len(one.points) == 1 and one.points[0].config["hardware"] == ["pcm", "sram-22nm"]
    axis = parse_sweep({"hidden": 20, "hardware": [["pcm"], ["sram-22nm"]]})
    assert len(axis.points) == 2
    layers = parse_sweep({"hidden": [[30, 20], [40]]})
    assert [p.config["hidden"] for p in layers.points] == [[30, 20], 40]


# ----------------------------------------------------------------------------- executors

@pytest.fixture(scope="module")
def serial_results(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serial")
    sweep = parse_sweep(_doc(tiny))
    report = run_sweep(sweep, folder / "serial.h5", executor="serial", progress=False)
    return sweep, folder / "serial.h5", report


def _doc(tiny):
    return tomllib.loads(tiny_sweep(tiny, hidden=(20, 30), seeds=2))


def _stored(path):
    runs = read_runs(path)
    out = {}
    for s in runs:
        full = load_run(path, s["run_id"])
        arrays = {f"{k}/{n}": v for k in ("curves", "write_counts")
                  for n, v in full[k].items() if n != "seconds"}
        arrays["plastic_units"] = full["plastic_units"]
        out[s["key"]] = (s["run_id"], deterministic(s), arrays)
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][0] == b[key][0]
        assert a[key][1] == b[key][1]
        for name, array in a[key][2].items():
            np.testing.assert_array_equal(array, b[key][2][name], err_msg=name)


def test_serial_sweep_stores_every_point(serial_results):
    sweep, path, report = serial_results
    assert report["run"] == len(sweep.points) == 12
    assert sum(report["counts"].values()) == 12
    runs = read_runs(path)
    assert sorted(s["key"] for s in runs) == sorted(p.key for p in sweep.points)
    assert all(s["status"] in ("converged", "not_converged") for s in runs)
    with h5py.File(path, "r") as f:
        assert f.attrs["sweep_points"] == 12
        for name in f["runs"]:
            g = f["runs"][name]
            assert json.loads(g.attrs["config_json"])["seed"] == g.attrs["seed"]
            assert g.attrs["version"] and g.attrs["key"]


def test_process_pool_and_dask_match_serial(serial_results, tmp_path):
    sweep, serial_path, _ = serial_results
    expected = _stored(serial_path)
    run_sweep(sweep, tmp_path / "proc.h5", executor="processes", workers=2, progress=False)
    _assert_same(expected, _stored(tmp_path / "proc.h5"))
    run_sweep(sweep, tmp_path / "dask.h5", executor="dask", workers=2, progress=False)
    _assert_same(expected, _stored(tmp_path / "dask.h5"))


def test_existing_file_needs_resume_and_resume_runs_nothing_twice(serial_results, tmp_path):
    sweep, serial_path, _ = serial_results
    with pytest.raises(StoreError, match="--resume"):
        run_sweep(sweep, serial_path, executor="serial", progress=False)
    report = run_sweep(sweep, serial_path, executor="serial", resume=True, progress=False)
    assert report["run"] == 0 and report["skipped"] == 12
    assert len(read_runs(serial_path)) == 12


def test_failing_run_is_stored_as_error_and_the_sweep_goes_on(tiny, tmp_path, monkeypatch,
                                                              capsys):
    train_module = sys.modules["neuroenergy.train"]  # the package exports a function 'train'
    real_train = train_module.train

    def flaky(config, data=None, progress=None):
        if config.hidden == 30:
            raise FloatingPointError("synthetic failure")
        return real_train(config, data, progress)

    monkeypatch.setattr(train_module, "train", flaky)
    path = write_sweep(tmp_path, tiny_sweep(tiny, hidden=(20, 30), seeds=1))
    out = tmp_path / "r.h5"
    assert cli.main(["sweep", str(path), "--out", str(out), "--executor", "serial"]) == 0
    err = capsys.readouterr().err
    assert "err 3" in err  # the live counts of the progress bar
    runs = read_runs(out)
    errors = [s for s in runs if s["status"] == "error"]
    assert len(runs) == 6 and len(errors) == 3
    assert all("FloatingPointError: synthetic failure" in s["error"] for s in errors)
    assert all(s["config"]["hidden"] == 30 for s in errors)
    assert cli.main(["show", str(out)]) == 0
    assert "synthetic failure" in capsys.readouterr().out


def test_resume_runs_the_failed_points_again_and_replaces_their_records(tiny, tmp_path,
                                                                          monkeypatch, capsys):
    train_module = sys.modules["neuroenergy.train"]
    real_train = train_module.train

    def flaky(config, data=None, progress=None):
        if config.hidden == 30:
            raise FloatingPointError("synthetic failure")
        return real_train(config, data, progress)

    path = write_sweep(tmp_path, tiny_sweep(tiny, hidden=(20, 30), seeds=1))
    out = tmp_path / "r.h5"
    monkeypatch.setattr(train_module, "train", flaky)
    assert cli.main(["sweep", str(path), "--out", str(out), "--executor", "serial"]) == 0
    before = {s["run_id"]: s for s in read_runs(out)}
    assert sum(s["status"] == "error" for s in before.values()) == 3
    monkeypatch.setattr(train_module, "train", real_train)
    capsys.readouterr()
    assert cli.main(["sweep", str(path), "--out", str(out), "--executor", "serial",
                     "--resume", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "3 runs in" in err and "3 already stored, 3 failed before and run again" in err
    after = read_runs(out)
    assert len(after) == 6 and not [s for s in after if s["status"] == "error"]
    assert len({s["key"] for s in after}) == 6
    kept = [s for s in after if s["config"]["hidden"] == 20]  # not run again
    assert len(kept) == 3 and all(s == before[s["run_id"]] for s in kept)
    rerun = [s for s in after if s["config"]["hidden"] == 30]
    assert len(rerun) == 3 and all(before[s["run_id"]]["status"] == "error" for s in rerun)
    fresh = run_sweep(parse_sweep(tomllib.loads(tiny_sweep(tiny, hidden=(30,), seeds=1))),
                      tmp_path / "fresh.h5", executor="serial", progress=False)
    assert fresh["counts"]["error"] == 0
    by_config = {json.dumps(s["config"], sort_keys=True): s for s in read_runs(tmp_path /
                                                                               "fresh.h5")}
    for s in rerun:  # the same numbers as the points run in a fresh file
        assert s["energy"] == by_config[json.dumps(s["config"], sort_keys=True)]["energy"]
    # a second resume finds nothing to do
    assert run_sweep(parse_sweep(tomllib.loads(path.read_text())), out, executor="serial",
                     resume=True, progress=False)["run"] == 0


def test_dying_worker_is_retried_then_stored_as_error(tiny, tmp_path, monkeypatch):
    sweep = parse_sweep(tomllib.loads(tiny_sweep(tiny, hidden=(20, 30), seeds=2,
                                                 rules=['name = "backprop"'])))
    victim = sweep.points[1]
    monkeypatch.setenv(FAULT_ENV, f"die:{victim.key}")
    report = run_sweep(sweep, tmp_path / "r.h5", executor="processes", workers=1,
                       progress=False)
    runs = {s["key"]: s for s in read_runs(tmp_path / "r.h5")}
    assert len(runs) == 4 and report["counts"]["error"] == 1
    assert runs[victim.key]["status"] == "error"
    assert "worker process died" in runs[victim.key]["error"]


@pytest.mark.slow
def test_dying_dask_worker_is_marked_failed(tiny, tmp_path, monkeypatch):
    sweep = parse_sweep(_doc(tiny))
    victim = sweep.points[0]
    monkeypatch.setenv(FAULT_ENV, f"die:{victim.key}")
    run_sweep(sweep, tmp_path / "r.h5", executor="dask", workers=2, progress=False)
    runs = {s["key"]: s for s in read_runs(tmp_path / "r.h5")}
    assert len(runs) == 12
    assert runs[victim.key]["status"] == "error" and "Dask worker" in runs[victim.key]["error"]


# ----------------------------------------------------------------------------- kill, interrupt

def test_sigkill_mid_sweep_then_resume(tiny, tmp_path):
    path = write_sweep(tmp_path, tiny_sweep(tiny, hidden=(20, 30, 40), seeds=3))
    out = tmp_path / "r.h5"
    proc = neuroenergy("sweep", path, "--out", out, "--executor", "serial", "--quiet")
    seen = wait_for_runs(out, 4, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with h5py.File(out, "r") as f:  # the file opens after SIGKILL
        assert "runs" in f
    survived = read_runs(out)
    assert len(survived) >= seen
    assert all(s["status"] in ("converged", "not_converged") for s in survived)

    resume = neuroenergy("sweep", path, "--out", out, "--resume", "--executor", "serial",
                         "--quiet")
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    assert f"{len(survived)} already stored" in err
    runs = read_runs(out)
    n = len(load_sweep(path).points)
    assert n == 27 and len(runs) == n
    assert len({s["key"] for s in runs}) == n and len({s["run_id"] for s in runs}) == n
    assert not (tmp_path / "r.h5.journal").exists()


def test_workers_do_not_outlive_a_killed_writer(tiny, tmp_path):
    import psutil
    path = write_sweep(tmp_path, tiny_sweep(tiny, hidden=(20, 30, 40), seeds=3))
    out = tmp_path / "r.h5"
    proc = neuroenergy("sweep", path, "--out", out, "--workers", "2", "--quiet")
    wait_for_runs(out, 1, proc)
    workers = psutil.Process(proc.pid).children()
    assert len(workers) >= 2
    proc.kill()  # the writer alone, not its process group
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, [p.cmdline() for p in alive]
    assert len(read_runs(out)) >= 1


def test_sigint_stores_finished_runs_and_says_how_to_resume(tiny, tmp_path):
    path = write_sweep(tmp_path, tiny_sweep(tiny, hidden=(20, 30, 40), seeds=3))
    out = tmp_path / "r.h5"
    proc = neuroenergy("sweep", path, "--out", out, "--workers", "2", "--quiet")
    wait_for_runs(out, 2, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "rerun the same command with --resume" in err
    assert "Traceback" not in err
    n = int(err.split("interrupted: ")[1].split(" finished")[0])
    assert len(read_runs(out)) >= n >= 2
    assert not (tmp_path / "r.h5.journal").exists()  # merged before exiting


def test_second_writer_is_refused(tiny, tmp_path):
    from neuroenergy.store import ResultsWriter
    path = write_sweep(tmp_path, tiny_sweep(tiny, hidden=(20,), seeds=1))
    out = tmp_path / "r.h5"
    with ResultsWriter(out):
        code = cli.main(["sweep", str(path), "--out", str(out), "--executor", "serial"])
    assert code == 2
    assert len(read_runs(out)) == 0


def test_sweep_on_a_running_dask_scheduler(tiny, tmp_path):
    from distributed import LocalCluster
    path = write_sweep(tmp_path, tiny_sweep(tiny, hidden=(20,), seeds=2,
                                            rules=['name = "backprop"']))
    out = tmp_path / "r.h5"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        code = cli.main(["sweep", str(path), "--out", str(out), "--scheduler",
                         cluster.scheduler_address, "--quiet"])
    assert code == 0
    assert len(read_runs(out)) == 2


@pytest.mark.parametrize("options, expected", [
    (["--scheduler", "tcp://127.0.0.1:8786", "--dask-local", "2"], "not both"),
    (["--dask-local", "0"], "'--dask-local' option must be an int >= 1"),
    (["--workers", "0"], "'--workers' option must be an int >= 1"),
    (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "--workers has no effect"),
])
def test_bad_executor_options(tiny, tmp_path, capsys, options, expected):
    path = write_sweep(tmp_path, tiny_sweep(tiny, hidden=(20,), seeds=1))
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "r.h5"), *options]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "r.h5").exists()


def test_missing_data_set_fails_before_the_file_is_made(tmp_path, capsys):
    path = write_sweep(tmp_path, f"hidden = 20\ndataset = {str(tmp_path / 'nowhere')!r}\n")
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "r.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r.h5").exists()


def test_pool_starts_with_the_largest_and_densest_runs():
    """The local pool's queue (and Dask's submission order): larger networks first, and at
    one size the rules that write the most synapses per sample, so the longest runs start
    first and the pool ends on short ones."""
    from neuroenergy.compare import compare_rules
    from neuroenergy.config import RunConfig
    from neuroenergy.executors import _cost
    tasks = [{"config": RunConfig(rule=rule, hidden=hidden).to_dict()}
             for hidden in (20, 100) for rule in compare_rules(hidden)]
    order = [(t["config"]["hidden"], t["config"]["rule"]["name"])
             for t in sorted(tasks, key=_cost)]
    assert order == [(100, "backprop"), (100, "path"), (100, "combined"),
                     (100, "top-fraction"), (20, "backprop"), (20, "path"), (20, "combined"),
                     (20, "top-fraction")]
    assert _cost({"config": {"hidden": [50, 50], "rule": "not a dict"}}) == (-100, -1.0)

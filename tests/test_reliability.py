"""Trying to break neuroenergy: damaged result files, Ctrl-C during ``train`` and
``compare``, two processes writing one file, and (marked slow) a sweep of 1,000 runs through
the process pool and a Dask LocalCluster without leaking memory or file handles.

The faults already covered elsewhere are not repeated here: bad data and learning rates at
the public API (test_bad_inputs), SIGKILL at every step of a write
and a full disk (test_store), SIGINT and SIGKILL in sweeps and dying workers (test_sweep),
missing or corrupt data sets and caches (test_data), config messages (test_config); every
command-line option is in test_cli_errors. docs/reliability.md lists every fault tried.
"""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import h5py
import pytest

from neuroenergy import cli
from neuroenergy.config import RunConfig
from neuroenergy.errors import StoreError
from neuroenergy.journal import journal_dir
from neuroenergy.rules import Path as PathRule
from neuroenergy.store import (ResultsWriter, load_network, load_run, read_runs,
                               record_from_result, write_run)
from neuroenergy.train import train
from reliability_support import quick, synthetic
from sweep_support import make_tiny_mnist, neuroenergy, wait_for_runs


# ----------------------------------------------------------------------------- result files

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny-mnist"))


@pytest.fixture(scope="module")
def mnist_result(tiny):
    return train(RunConfig(rule=PathRule(k=5), hidden=20, max_epochs=0.5, eval_every=500,
                           dataset=tiny))


@pytest.fixture
def six_runs(mnist_result, tmp_path):
    """A results file with six runs (weights stored in every other one)."""
    path = tmp_path / "r.h5"
    with ResultsWriter(path) as writer:
        for i in range(6):
            writer.add(record_from_result(mnist_result, store_weights=i % 2 == 0,
                                          key=f"key{i}", run_id=f"run{i}"), merge=True)
    return path


def run_cli(argv, capsys):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_file_that_is_not_hdf5(tmp_path, capsys):
    path = tmp_path / "r.h5"
    path.write_text("run,accuracy\n1,0.95\n")
    for argv in (["show", path], ["show", path, "--json"], ["hardware", path],
                 ["plot", path, "--out", tmp_path / "figs"], ["frontier", path]):
        code, out, err = run_cli(argv, capsys)
        assert code == 2 and "Traceback" not in err
        assert err.strip() == f"neuroenergy: error: cannot read {path}: it is not an HDF5 " \
                              "file (no HDF5 signature); give a results file."
    for call in (read_runs, load_run, load_network):
        with pytest.raises(StoreError, match="not an HDF5 file"):
            call(path)
    with pytest.raises(StoreError, match="Is it an HDF5 results file"):
        ResultsWriter(path).__enter__()
    assert path.read_text() == "run,accuracy\n1,0.95\n"  # never overwritten


def test_file_cut_in_half(six_runs, mnist_result, capsys):
    blob = six_runs.read_bytes()
    six_runs.write_bytes(blob[:len(blob) // 2])
    code, _, err = run_cli(["show", six_runs], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"it is truncated: {len(blob) // 2:,} of its {len(blob):,} bytes are there" in err
    assert "restore the file" in err
    for call in (read_runs, load_run):
        with pytest.raises(StoreError, match="truncated"):
            call(six_runs)
    with pytest.raises(StoreError, match="truncated"):  # no writer touches it either
        write_run(six_runs, mnist_result)
    assert six_runs.read_bytes() == blob[:len(blob) // 2]


def test_file_written_by_a_newer_version(six_runs, mnist_result, capsys):
    with h5py.File(six_runs, "a") as f:
        f.attrs["format_version"] = 2
    before = six_runs.read_bytes()
    code, _, err = run_cli(["show", six_runs], capsys)
    assert code == 2 and "Traceback" not in err
    assert "was written by a newer neuroenergy (format 2 > 1); upgrade neuroenergy to read it" \
        in err
    with pytest.raises(StoreError, match="upgrade neuroenergy to add runs to it"):
        write_run(six_runs, mnist_result)
    assert six_runs.read_bytes() == before


def test_journal_file_written_by_a_newer_version_is_named(six_runs, mnist_result, capsys):
    """The file opens; the one run it cannot read (a newer journal entry) is listed."""
    folder = journal_dir(six_runs)
    folder.mkdir()
    newer = folder / "future.h5"
    with h5py.File(newer, "w") as f:
        f.attrs["format_version"] = 2
        f.require_group("runs/future")
    runs = read_runs(six_runs)
    assert len(runs) == 7
    future = next(s for s in runs if s["run_id"] == "future")
    assert future["status"] == "unreadable" and future["pending"]
    assert "newer neuroenergy" in future["error"]
    code, out, _ = run_cli(["show", six_runs], capsys)
    assert code == 0 and "6 not converged, 0 diverged, 0 error, 1 unreadable" in out
    assert "unreadable: future: journal file unreadable" in out


def damage(path):
    """Each of the six runs loses something else; returns {run: what it lost}."""
    lost = {"run0": "summary", "run1": "curves", "run2": "write_counts/input",
            "run3": "metrics and energy groups", "run4": "weights/w_out", "run5": "json"}
    with h5py.File(path, "a") as f:
        runs = f["runs"]
        del runs["run0"].attrs["summary_json"]
        del runs["run1"]["curves"]
        del runs["run2"]["write_counts"]["input"]
        del runs["run3"]["metrics"]
        del runs["run3"]["energy"]
        del runs["run4"]["weights"]["w_out"]
        runs["run5"].attrs["summary_json"] = '{"rule": "path", "hidden": '
    return lost


def test_runs_missing_fields_open_what_can_be_opened(six_runs, tmp_path, capsys):
    damage(six_runs)
    runs = {s["run_id"]: s for s in read_runs(six_runs)}
    assert set(runs) == {f"run{i}" for i in range(6)}
    assert runs["run0"]["status"] == runs["run5"]["status"] == "unreadable"
    assert "missing or corrupt summary" in runs["run0"]["error"]
    assert all(runs[f"run{i}"]["status"] == "not_converged" for i in (1, 2, 3, 4))

    assert load_run(six_runs, "run1")["missing"] == {"curves": "not stored"}
    assert load_run(six_runs, "run2")["missing"] == {
        "write_counts": "incomplete: input missing"}
    full = load_run(six_runs, "run2")
    assert "output" in full["write_counts"] and "curves" in full  # the rest is there
    assert "missing" not in load_run(six_runs, "run3")  # the summary holds the metrics
    with pytest.raises(StoreError, match="run 'run4' .* incomplete weights: w_out missing"):
        load_network(six_runs, "run4")
    with pytest.raises(StoreError, match="stored without weights"):
        load_network(six_runs, "run1")
    assert load_network(six_runs, "run2").w_in.shape == (785, 20)

    code, out, err = run_cli(["show", six_runs], capsys)
    assert code == 0, err
    assert "4 not converged, 0 diverged, 0 error, 2 unreadable" in out
    assert "unreadable: run0: missing or corrupt summary" in out
    assert "unreadable: run5: missing or corrupt summary" in out
    code, out, err = run_cli(["show", six_runs, "--runs"], capsys)
    assert code == 0 and out.count("unreadable") >= 2, err
    code, out, err = run_cli(["show", six_runs, "--json"], capsys)
    assert code == 0 and json.loads(out)["counts"]["unreadable"] == 2
    code, out, err = run_cli(["hardware", six_runs, "--presets", "pcm"], capsys)
    assert code == 0, err
    assert "run2 (path, 20 hidden, seed 0)\n    cannot be re-priced: write counts " \
           "incomplete: input missing" in out
    assert "2 failed or unreadable runs skipped" in out
    code, out, err = run_cli(["plot", six_runs, "--out", tmp_path / "figs"], capsys)
    assert code == 0 and "write_maps.png" in out, err
    code, out, err = run_cli(["frontier", six_runs, "--wear"], capsys)
    assert code == 0 and "path(k=5) 0/4" in out, err


def test_diverged_run_in_a_file(tmp_path, capsys):
    """A diverged run is stored as such, shown, and printed as strict JSON (no NaN)."""
    result = train(quick(lr=10.0, init_std=3.0), data=synthetic(scale=100.0))
    assert result.status == "diverged"
    path = tmp_path / "r.h5"
    write_run(path, result)
    code, out, _ = run_cli(["show", path, "--runs"], capsys)
    assert code == 0 and "diverged" in out
    code, out, _ = run_cli(["show", path, "--json"], capsys)
    summary = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))[
        "summaries"][0]
    assert summary["status"] == "diverged" and summary["test_accuracy"] is None
    assert summary["diverged_at_sample"] == result.diverged_at_sample


def test_network_too_large_for_memory_is_refused_before_training(tiny, monkeypatch, capsys,
                                                                 tmp_path):
    from neuroenergy import resources
    monkeypatch.setattr(resources, "available_bytes", lambda: 2**30)  # 1 GiB free
    out = tmp_path / "r.h5"
    code, _, err = run_cli(["train", "--dataset", tiny, "--hidden", "100000", "--out", out],
                           capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert re.search(r"a network with hidden layers \(100000,\) needs about \d+\.\d GiB of "
                     r"memory but only 1\.0 GiB are available; use fewer hidden units", err)
    assert not out.exists()


# ----------------------------------------------------------------------------- interruptions

class _Stderr:
    """Collects a child's stderr in a thread (a full pipe would block the child)."""

    def __init__(self, proc):
        self.text = ""
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for chunk in iter(lambda: proc.stderr.read(1), ""):
            self.text += chunk

    def wait_for(self, text, proc, timeout=120.0):
        deadline = time.monotonic() + timeout
        while text not in self.text:
            assert proc.poll() is None, f"ended early ({proc.returncode}): {self.text}"
            assert time.monotonic() < deadline, f"no {text!r} after {timeout} s: {self.text}"
            time.sleep(0.05)


def test_ctrl_c_during_train_keeps_the_file(tiny, mnist_result, tmp_path):
    out = tmp_path / "r.h5"
    write_run(out, mnist_result, run_id="earlier")
    before = out.read_bytes()
    proc = neuroenergy("train", "--dataset", tiny, "--hidden", "100", "--max-epochs", "50",
                       "--eval-every", "500", "--target", "0.999", "--out", out)
    err = _Stderr(proc)
    err.wait_for("acc=", proc)  # training: the first evaluation is on the progress bar
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the whole process group
    assert proc.wait(timeout=60) == 130
    err.thread.join(timeout=10)
    assert "Traceback" not in err.text
    assert f"interrupted before the run finished, so nothing was stored; {out} is " \
           "unchanged. Rerun the same command to train it again." in err.text
    assert out.read_bytes() == before
    assert [s["run_id"] for s in read_runs(out)] == ["earlier"]
    assert not journal_dir(out).exists()
    write_run(out, mnist_result, run_id="later")  # the lock was released


def test_ctrl_c_during_compare_keeps_finished_runs_and_resumes(tiny, tmp_path, capsys):
    out = tmp_path / "c.h5"
    args = ["compare", "--dataset", tiny, "--hidden", "20", "--seeds", "2", "--max-epochs",
            "2", "--eval-every", "1000", "--target", "0.999", "--no-hardware", "--out", out]
    proc = neuroenergy(*args)
    wait_for_runs(out, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    n = int(err.split("interrupted: ")[1].split(" finished runs")[0])
    assert f"are stored in {out} ({n} of the 8 runs of this comparison); rerun the same " \
           f"command with --resume to run the remaining {8 - n}." in err
    with h5py.File(out, "r") as f:  # closed cleanly: opens without the library's help
        assert len(f["runs"]) == n >= 1
    kept = {s["run_id"]: s for s in read_runs(out)}
    assert len(kept) == n and not journal_dir(out).exists()
    code, _, err = run_cli(args, capsys)  # the same command again: refused, says why
    assert code == 2 and f"{out} already holds {n} of the 8 runs of this comparison. Rerun " \
                         "with --resume" in err
    code, resumed, err = run_cli([*args, "--resume", "--json"], capsys)
    assert code == 0, err
    runs = read_runs(out)
    assert len(runs) == 8 and len({s["key"] for s in runs}) == 8
    assert {r: kept[r]["train_seconds"] for r in kept} == \
        {s["run_id"]: s["train_seconds"] for s in runs if s["run_id"] in kept}
    assert len(json.loads(resumed.splitlines()[-1])) == 8


# a second process holding a results file open for writing, until it is killed
HOLDER = textwrap.dedent("""
    import sys, time
    from neuroenergy.store import ResultsWriter
    with ResultsWriter(sys.argv[1]):
        print("holding", flush=True)
        time.sleep(600)
""")


def test_two_processes_writing_one_file(tiny, mnist_result, tmp_path):
    out = tmp_path / "r.h5"
    write_run(out, mnist_result, run_id="first")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        start = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "neuroenergy", "train", "--dataset",
                                 tiny, "--hidden", "20", "--out", str(out)],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"neuroenergy: error: {out} is being written by another process (lock {out}.lock);"
            " wait for it to finish or choose another --out.")
        assert time.monotonic() - start < 60  # refused at once, not after training
        with pytest.raises(StoreError, match="being written by another process"):
            write_run(out, mnist_result)  # the API refuses too
    finally:
        holder.kill()  # SIGKILL: the lock goes with the process
        holder.wait(timeout=30)
    assert [s["run_id"] for s in read_runs(out)] == ["first"]
    write_run(out, mnist_result, run_id="second")
    assert sorted(s["run_id"] for s in read_runs(out)) == ["first", "second"]


# ----------------------------------------------------------------------------- load

LOAD_RUNS = 1000


def _client_state():
    import psutil
    proc = psutil.Process()
    return {"rss_mib": proc.memory_info().rss / 2**20, "fds": proc.num_fds(),
            "open_files": len(proc.open_files()), "threads": proc.num_threads(),
            "children": len(proc.children(recursive=True))}


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_a_sweep_of_1000_runs_leaks_no_memory_or_files(tiny, tmp_path, executor):
    """1,000 runs of 20 hidden units, 2,000 samples each (one epoch of the tiny set), two
    evaluations each. The client's RSS and open files are measured after a 20-run warm-up
    sweep (imports, data, compiled kernels, executor machinery) and after the 1,000 runs."""
    import gc
    from neuroenergy.sweep import parse_sweep, run_sweep
    workers = min(4, os.cpu_count() or 1)

    def sweep(n, name):
        doc = {"hidden": 20, "seeds": n, "max_epochs": 1.0, "eval_every": 1000,
               "target_accuracy": 0.999, "dataset": tiny}
        start = time.monotonic()
        report = run_sweep(parse_sweep(doc), tmp_path / name, executor=executor,
                           workers=workers, progress=False)
        return report, time.monotonic() - start

    sweep(20, "warmup.h5")
    gc.collect()
    before = _client_state()
    report, seconds = sweep(LOAD_RUNS, "load.h5")
    gc.collect()
    after = _client_state()
    runs = read_runs(tmp_path / "load.h5")
    numbers = {"executor": executor, "workers": workers, "runs": len(runs),
               "seconds": round(seconds, 1), "before": before, "after": after,
               "file_mib": round((tmp_path / "load.h5").stat().st_size / 2**20, 1)}
    print(json.dumps(numbers))
    record = os.environ.get("NEUROENERGY_LOAD_RECORD")
    if record:  # docs/reliability.md quotes these numbers
        with open(record, "a") as f:
            f.write(json.dumps(numbers) + "\n")
    assert len(runs) == LOAD_RUNS and report["counts"]["error"] == 0
    assert all(s["status"] == "not_converged" and s["samples"] == 2000 for s in runs)
    assert after["fds"] <= before["fds"] + 2 and after["open_files"] <= before["open_files"]
    assert after["children"] <= before["children"]
    assert after["rss_mib"] - before["rss_mib"] < 100

"""The results store: round trips, error runs, keys, the lock, crash safety at every step of a
write (SIGKILL injected), a full disk, bad files, and readability by HDF5 1.x tools."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from neuroenergy.config import RunConfig
from neuroenergy.errors import StoreError
from neuroenergy.journal import FAULT_ENV, FAULT_POINTS, journal_dir
from neuroenergy.rules import Path as PathRule
from neuroenergy.store import (ResultsWriter, error_record, load_network, load_run, read_runs,
                               record_from_result, write_extra, write_run)
from neuroenergy.train import train
from sweep_support import make_tiny_mnist


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny-mnist"))


@pytest.fixture(scope="module")
def result(tiny):
    return train(RunConfig(rule=PathRule(k=5), hidden=20, max_epochs=0.5, eval_every=500,
                           dataset=tiny))


def test_round_trip_of_runs_errors_and_extras(result, tmp_path):
    out = tmp_path / "r.h5"
    rid = write_run(out, result)
    rid2 = write_run(out, result, key="k1", store_weights=False)
    bad = error_record(result.config.to_dict(), "ValueError: boom", key="k2")
    rid3 = write_run(out, bad)
    runs = {s["run_id"]: s for s in read_runs(out)}
    assert set(runs) == {rid, rid2, rid3}
    assert runs[rid2]["key"] == "k1" and runs[rid3]["status"] == "error"
    assert runs[rid3]["error"] == "ValueError: boom"
    assert runs[rid]["energy"] == json.loads(json.dumps(result.to_dict()["energy"]))
    net = load_network(out, rid)
    np.testing.assert_array_equal(net.w_in, result.network.w_in)
    with pytest.raises(StoreError, match="without weights"):
        load_network(out, rid2)
    full = load_run(out, rid2)
    np.testing.assert_array_equal(full["write_counts"]["input"], result.write_counts[0])
    np.testing.assert_array_equal(full["curves"]["accuracy"], result.curves["accuracy"])
    np.testing.assert_array_equal(full["plastic_units"], result.plastic_units)
    assert "curves" not in load_run(out, rid3)
    write_extra(out, f"runs/{rid}/spiking/convert", {"rate": [1.0, 2.0]}, {"n": 3, "d": {"a": 1}})
    with h5py.File(out, "r") as f:
        g = f[f"runs/{rid}/spiking/convert"]
        assert list(g["rate"][()]) == [1.0, 2.0] and json.loads(g.attrs["d"]) == {"a": 1}
        assert f.attrs["format_version"] == 1
    with pytest.raises(StoreError, match="already holds"):
        write_run(out, result, key="k1")
    assert not journal_dir(out).exists()


def test_second_writer_is_refused_with_a_clear_message(result, tmp_path):
    out = tmp_path / "r.h5"
    with ResultsWriter(out):
        with pytest.raises(StoreError, match="being written by another process"):
            write_run(out, result)
    write_run(out, result)  # the lock is released afterwards


# a child process that journals runs and dies by SIGKILL at the named point of a write
CHILD = textwrap.dedent("""
    import pickle, sys
    from neuroenergy.store import ResultsWriter
    records = pickle.load(open(sys.argv[2], "rb"))
    with ResultsWriter(sys.argv[1]) as w:
        for record in records:
            w.add(record, merge=True)
""")


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_sigkill_at_every_step_of_a_write_loses_nothing(result, tmp_path, point):
    import pickle
    out = tmp_path / "r.h5"
    records = [record_from_result(result, store_weights=False, key=f"key{i}") for i in range(3)]
    with ResultsWriter(out) as w:  # one run stored before the crash
        w.add(records[0], merge=True)
    (tmp_path / "records.pkl").write_bytes(pickle.dumps(records[1:]))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out), str(tmp_path / "records.pkl")],
                          env={**os.environ, FAULT_ENV: point}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr
    with h5py.File(out, "r") as f:  # opens, and holds the run of before the crash
        assert records[0]["run_id"] in f["runs"]
    keys_seen = [s["key"] for s in read_runs(out)]
    finished = point != "pending_written"  # later points: run 1 had reached the journal
    assert sorted(keys_seen) == (["key0", "key1"] if finished else ["key0"])
    with ResultsWriter(out) as w:  # recovery: leftovers removed, journal merged, no duplicate
        w.add(records[2], merge=True)
    keys = sorted(s["key"] for s in read_runs(out))
    assert keys == (["key0", "key1", "key2"] if finished else ["key0", "key2"])
    assert not journal_dir(out).exists()
    assert not (tmp_path / "r.h5.tmp-merge").exists()


def test_full_disk_gives_a_clear_error_and_a_readable_file(result, tmp_path):
    out = tmp_path / "r.h5"
    write_run(out, result, key="before")
    size = out.stat().st_size
    # RLIMIT_FSIZE makes writes past the limit fail as a full disk would (EFBIG)
    child = textwrap.dedent(f"""
        import pickle, resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        record = pickle.load(open(sys.argv[1], "rb"))
        resource.setrlimit(resource.RLIMIT_FSIZE, ({size} + 4096, {size} + 4096))
        from neuroenergy.errors import StoreError
        from neuroenergy.store import write_run
        try:
            write_run({str(out)!r}, record)
        except StoreError as exc:
            print(exc)
            sys.exit(3)
    """)
    import pickle
    record = record_from_result(result, store_weights=True, key="big")
    record["arrays"]["weights/w_in"] = np.random.default_rng(0).normal(
        size=(785, 400)).astype(np.float32)  # incompressible, larger than the limit
    (tmp_path / "rec.pkl").write_bytes(pickle.dumps(record))
    proc = subprocess.run([sys.executable, "-c", child, str(tmp_path / "rec.pkl")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "the disk is full" in proc.stdout and "unchanged and readable" in proc.stdout
    assert [s["key"] for s in read_runs(out)] == ["before"]
    write_run(out, result, key="after")  # space is back: writing goes on
    assert sorted(s["key"] for s in read_runs(out)) == ["after", "before"]


def test_bad_files_give_clear_errors(result, tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        read_runs(tmp_path / "missing.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not an HDF5 file")
    with pytest.raises(StoreError, match="not an HDF5 file"):
        read_runs(text)
    with pytest.raises(StoreError, match="Is it an HDF5 results file"):
        write_run(text, result)
    assert text.read_text() == "not an HDF5 file"
    good = tmp_path / "good.h5"
    write_run(good, result)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(StoreError, match="cannot read"):
        read_runs(truncated)
    with h5py.File(good, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="newer neuroenergy"):
        read_runs(good)
    with pytest.raises(StoreError, match="newer neuroenergy"):
        write_run(good, result)


def test_run_with_missing_summary_is_listed_as_unreadable(result, tmp_path):
    out = tmp_path / "r.h5"
    rid = write_run(out, result)
    write_run(out, result)
    with h5py.File(out, "a") as f:
        del f["runs"][rid].attrs["summary_json"]
    runs = {s["run_id"]: s for s in read_runs(out)}
    assert runs[rid]["status"] == "unreadable" and "summary" in runs[rid]["error"]
    assert sum(s["status"] != "unreadable" for s in runs.values()) == 1


@pytest.mark.skipif(shutil.which("h5dump") is None,
                    reason="h5dump not installed (Debian package hdf5-tools)")
def test_h5dump_reads_the_file(result, tmp_path):
    out = tmp_path / "r.h5"
    write_run(out, result, key="k")
    proc = subprocess.run(["h5dump", "-H", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "summary_json" in proc.stdout and "write_counts" in proc.stdout

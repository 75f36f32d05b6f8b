"""Helpers for the sweep, store and plot tests: a tiny real data set (a slice of MNIST
written as IDX files, so runs take a fraction of a second) and tiny sweep files."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_TRAIN, N_TEST = 2000, 500
IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    Path(path).write_bytes(header + array.tobytes())


def make_tiny_mnist(folder) -> str:
    """The first 2,000 training and 500 test images of real MNIST as an IDX folder."""
    from neuroenergy.data import load_raw
    raw = load_raw("mnist", fetch=False)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": raw.train_images[:N_TRAIN].reshape(-1, 28, 28),
              "train_labels": raw.train_labels[:N_TRAIN],
              "test_images": raw.test_images[:N_TEST].reshape(-1, 28, 28),
              "test_labels": raw.test_labels[:N_TEST]}
    for key, name in IDX_NAMES.items():
        write_idx(folder / name, arrays[key])
    return str(folder)


def tiny_sweep(dataset, hidden=(20, 30), seeds=2, rules=None, target=0.99, extra="") -> str:
    """A sweep file text: every run is 1,000 samples with two evaluations (not converged
    unless ``target`` is low)."""
    rules = rules or ['name = "backprop"', 'name = "path"\nk = [5, 10]']
    text = (f"hidden = {list(hidden)}\nseeds = {seeds}\nmax_epochs = 0.5\neval_every = 500\n"
            f"target_accuracy = {target}\ndataset = {str(dataset)!r}\n{extra}\n")
    for rule in rules:
        text += f"\n[[rule]]\n{rule}\n"
    return text


def neuroenergy(*args, env=None, **kwargs) -> subprocess.Popen:
    """Start the command line in its own process group (so a test can kill the whole sweep)."""
    return subprocess.Popen([sys.executable, "-m", "neuroenergy", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True,
                            **kwargs)


def wait_for_runs(path, n, proc, timeout=120.0) -> int:
    """Poll until ``path`` (file and journal) holds at least ``n`` runs; returns the count."""
    from neuroenergy.errors import StoreError
    from neuroenergy.store import read_runs
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended early ({proc.returncode}): "
                                 f"{proc.stderr.read()}")
        try:
            count = len(read_runs(path))
        except (StoreError, OSError):  # the other process may be writing it right now
            count = 0
        if count >= n:
            return count
        time.sleep(0.05)
    raise AssertionError(f"only {count} runs after {timeout} s")


def deterministic(summary) -> dict:
    """A run summary without what legitimately differs between executions (timings)."""
    drop = {"train_seconds", "pending"}
    return {k: v for k, v in summary.items() if k not in drop}

"""Warm-up of a worker pool: ``train.kernel_key`` must tell apart exactly the runs that
take different compiled training kernels (else a pool compiles a kernel twice, or not
ahead), and ``train.warm_up`` must compile the kernel the run then uses."""
import numpy as np
import pytest

from neuroenergy import RunConfig, sgd_kernel
from neuroenergy.compare import compare_rules
from neuroenergy.data import Dataset
from neuroenergy.executors import _warm_up_tasks
from neuroenergy.hardware import DEFAULT_COMPARE_PRESETS
from neuroenergy.rules import Backprop, TopFraction
from neuroenergy.train import kernel_key, train, warm_up


@pytest.fixture(scope="module")
def small_data():
    rng = np.random.default_rng(0)
    return Dataset("small", rng.random((40, 785), dtype=np.float32), np.arange(40) % 10,
                   rng.random((20, 785), dtype=np.float32), np.arange(20) % 10)


def _configs():
    out = []
    for hardware in (None, DEFAULT_COMPARE_PRESETS):
        out += [RunConfig(rule=r, hidden=20, seed=0, hardware=hardware)
                for r in compare_rules(20)]
    out.append(RunConfig(rule=Backprop(), hidden=20, seed=0, alpha=0.5))
    out.append(RunConfig(rule=TopFraction(p=0.3), hidden=20, seed=0))
    out.append(RunConfig(rule=Backprop(), hidden=20, seed=0, hardware=("pcm",),
                         hardware_mode="in-the-loop"))
    return out


def test_kernel_key_tells_apart_exactly_the_compiled_kernels(small_data, monkeypatch):
    """The flags each run passes to the compiled kernel (which decide what numba compiles),
    recorded during warm_up, against the keys: equal keys <=> equal kernels."""
    seen = []
    for name in ("_chunk_plain", "_chunk_tallied"):
        kernel = getattr(sgd_kernel, name)

        def record(*args, kernel=kernel, name=name):
            flags = args[19:] if name == "_chunk_plain" else args[23:]
            seen.append((name, tuple(f is None for f in flags)))
            return kernel(*args)
        monkeypatch.setattr(sgd_kernel, name, record)
    kernels, keys = [], []
    for config in _configs():
        seen.clear()
        warm_up(config, small_data)
        assert len(set(seen)) == 1, config  # one kernel per run
        kernels.append(seen[0])
        keys.append(kernel_key(config))
    for i in range(len(keys)):
        for j in range(len(keys)):
            assert (keys[i] == keys[j]) == (kernels[i] == kernels[j]), (keys[i], keys[j])


def test_warm_up_compiles_the_kernel_of_the_run(small_data):
    """After warm_up, the run itself finds its kernel compiled: no new specialization."""
    config = RunConfig(rule=TopFraction(p=0.05), hidden=20, seed=1, max_epochs=0.5)
    warm_up(config, small_data)
    before = len(sgd_kernel._chunk_plain.signatures)
    result = train(config, small_data)
    assert result.samples > 0
    assert len(sgd_kernel._chunk_plain.signatures) == before


def test_warm_up_tasks_one_per_kernel_and_only_when_useful():
    def task(config):
        return {"config": config.to_dict(), "key": str(id(config)), "store_weights": False}
    tasks = [task(c) for c in _configs()]
    warm = _warm_up_tasks(tasks, workers=2)
    assert len(warm) == len({kernel_key(c) for c in _configs()})
    assert all(t["warm_up"] and t["key"] is None for t in warm)
    assert _warm_up_tasks(tasks, workers=1) == []
    same = [task(RunConfig(rule=Backprop(), hidden=20, seed=s)) for s in range(3)]
    assert _warm_up_tasks(same, workers=2) == []  # one kernel: nothing to share out

"""Executors of sweep runs: serial, local processes and Dask distributed.

Each runs :func:`run_point` on its workers and yields the records (picklable dicts of a
summary and arrays, see :func:`neuroenergy.store.record_from_result`) back to the one process
that writes the results file. A run that raises becomes an 'error' record; a worker process
that dies (killed, out of memory) has its runs retried, then stored as errors.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from collections import deque
from contextlib import contextmanager, nullcontext

from .errors import ConfigError, DependencyError

#: parallelism comes from running many runs at once: one numba / BLAS thread per worker
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}
MAX_ATTEMPTS = 2
PR_SET_PDEATHSIG = 1  # linux/prctl.h
EXECUTORS = ("serial", "processes", "dask")
#: test hook: ``NEUROENERGY_EXECUTOR_FAULT=die:<key>`` kills the worker that runs that point;
#: ``raise:<key>`` (``raise:*``: every point) makes the run fail with an error
FAULT_ENV = "NEUROENERGY_EXECUTOR_FAULT"

_data_cache = {}


def _dataset_for(config):
    """The preprocessed data set, kept per worker process for the next runs."""
    from .data import load_dataset
    key = (config.dataset, config.zero_mean, config.noise_std, config.data_seed)
    if key not in _data_cache:
        _data_cache.clear()  # one data set in memory at a time
        _data_cache[key] = load_dataset(*key)
    return _data_cache[key]


def _one_blas_thread():
    """BLAS results depend (in the last bits) on its thread count: every executor trains
    with one thread so that serial, process and Dask sweeps store identical results."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def run_point(task: dict) -> dict:
    """Train one sweep point; never raises for a failing run (returns an 'error' record)."""
    from .config import RunConfig
    from .store import error_record, record_from_result
    from .train import train
    config_dict, key = task["config"], task["key"]
    if task.get("warm_up"):
        return _warm_up(config_dict)
    fault = os.environ.get(FAULT_ENV)
    if fault == f"die:{key}":
        os._exit(70)
    try:
        if fault in (f"raise:{key}", "raise:*"):
            raise RuntimeError("injected failure (test hook)")
        config = RunConfig.from_dict(config_dict)
        with _one_blas_thread():
            result = train(config, _dataset_for(config))
        return record_from_result(result, task["store_weights"], key)
    except Exception as exc:  # a failing run is a result, not the sweep's failure
        return error_record(config_dict, f"{type(exc).__name__}: {exc}", key,
                            traceback.format_exc())


def _warm_up(config_dict) -> None:
    """Compile a run's kernel in this worker (``train.warm_up``); a failure is left for the
    run itself to report."""
    from .config import RunConfig
    from .train import warm_up
    try:
        config = RunConfig.from_dict(config_dict)
        with _one_blas_thread():
            warm_up(config, _dataset_for(config))
    except Exception:  # noqa: BLE001 - the run that needs this kernel says what is wrong
        pass


def _warm_up_tasks(tasks, workers):
    """When the runs take several compiled kernels (``train.kernel_key``) and there are
    several workers: one task per kernel, queued before the runs, so that each worker
    compiles a different kernel and numba's cache hands it to the others. Otherwise every
    worker compiles every kernel its first runs need, all at the same time (the main job's
    first run: ~40 s of each worker instead of ~25 s)."""
    if workers < 2:
        return []
    from .config import RunConfig
    from .train import kernel_key
    first = {}
    for task in tasks:
        try:
            first.setdefault(kernel_key(RunConfig.from_dict(task["config"])), task)
        except Exception:  # noqa: BLE001 - an invalid point is reported by its run
            continue
    if len(first) < 2:
        return []
    return [{"config": t["config"], "key": None, "store_weights": False, "warm_up": True}
            for t in first.values()]


def _died_record(task, why):
    from .store import error_record
    return error_record(task["config"], why, task["key"])


def _cost(task):
    """Sort key: largest networks first, and at one size the rules that write the largest
    share of the synapses per sample (the pool then ends on short runs: a smaller
    makespan; every write is priced, so at one size the densest rule is the longest)."""
    config = task["config"]
    hidden = config["hidden"]
    size = sum(hidden) if isinstance(hidden, list) else hidden
    return -size, -_write_share(config.get("rule"), size)


def _write_share(rule, size):
    """Rough share of the synapses a rule writes per sample (1 for backprop): its input
    fraction times its plastic units' share of the network; 1 if it cannot be told."""
    if not isinstance(rule, dict):  # RunConfig.to_dict: {"name": ..., params...}
        return 1.0
    share = rule.get("p", 1.0)
    k = rule.get("k")
    try:
        share = float(share if share is not None else 1.0)
        if k is not None:
            share *= min(1.0, float(k) / max(size, 1))
    except (TypeError, ValueError):
        return 1.0
    return share


def _tasks(points, store_weights):
    return [{"config": p.config, "key": p.key, "store_weights": store_weights} for p in points]


@contextmanager
def _environ(values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class SerialExecutor:
    """Every run in this process, one after the other."""

    remote = False

    def describe(self):
        return "serial"

    def run(self, points, store_weights):
        for task in _tasks(points, store_weights):
            yield run_point(task)


def _worker_init():
    # Ctrl-C reaches the whole process group: only the writer handles it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a writer killed outright (SIGKILL) must not leave its workers behind
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: workers may linger
            pass


class ProcessExecutor:
    """A pool of local worker processes (spawned, one numba and BLAS thread each)."""

    remote = False

    def __init__(self, workers=None):
        self.workers = workers or os.cpu_count() or 1

    def describe(self):
        return f"{self.workers} processes"

    def _pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        with _environ(WORKER_ENV):  # spawned children inherit the environment
            return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(
                "spawn"), initializer=_worker_init)

    def run(self, points, store_weights):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool
        # largest networks first: the pool then finishes with short runs (smaller makespan)
        tasks = sorted(_tasks(points, store_weights), key=_cost)
        queue = deque(_warm_up_tasks(tasks, self.workers) + tasks)
        suspects = deque()  # runs lost with a dying worker: retried one at a time
        deaths = {}
        in_flight = {}
        pool = self._pool()
        try:
            while queue or suspects or in_flight:
                source, limit = (suspects, 1) if suspects else (queue, 2 * self.workers)
                broken = False
                while source and len(in_flight) < limit and not broken:
                    task = source.popleft()
                    try:
                        in_flight[pool.submit(run_point, task)] = task
                    except BrokenProcessPool:
                        source.appendleft(task)
                        broken = True
                if not broken:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        try:
                            record = future.result()
                        except BrokenProcessPool:
                            broken = True
                            break
                        if not in_flight.pop(future).get("warm_up"):
                            yield record
                if broken:
                    _terminate(pool)
                    lost = [t for t in in_flight.values() if not t.get("warm_up")]
                    in_flight.clear()
                    if len(lost) == 1:  # it died alone: it is the cause
                        task = lost[0]
                        deaths[task["key"]] = deaths.get(task["key"], 0) + 1
                        if deaths[task["key"]] >= MAX_ATTEMPTS:
                            yield _died_record(task, "a worker process died (killed or out "
                                               f"of memory) {MAX_ATTEMPTS} times while "
                                               "running this point alone")
                            lost = []
                    suspects.extend(lost)
                    pool = self._pool()
            pool.shutdown(wait=True)
        finally:
            _terminate(pool)


def _terminate(pool):
    """Stop a process pool now, running tasks included (shutdown alone waits for them)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    # taken before shutdown(), which drops the pool's reference to its result queue
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    for process in processes:
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    # A worker killed while sending its result leaves half a message in the result pipe; the
    # pool's manager thread then waits for the rest, and Python's exit waits for that thread
    # for ever. With the workers gone, closing this process's own write end of the pipe
    # ends the wait with EOF (the thread sees a broken pool and exits).
    for process in processes:
        process.join(timeout=5)
    if writer is not None and not any(p.is_alive() for p in processes):
        try:
            writer.close()
        except OSError:  # pragma: no cover - already closed
            pass


class DaskExecutor:
    """Dask distributed: an existing cluster (``scheduler`` address) or a LocalCluster."""

    def __init__(self, workers=None, scheduler=None):
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            raise DependencyError("the Dask executor needs dask[distributed]: pip install "
                                  "'neuroenergy[dask]'.") from exc
        self.scheduler = scheduler
        self.workers = workers or os.cpu_count() or 1
        self.remote = scheduler is not None

    def describe(self):
        return f"dask {self.scheduler}" if self.scheduler else f"dask local {self.workers}"

    @contextmanager
    def _client(self):
        from distributed import Client, LocalCluster
        if self.scheduler:
            try:
                client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"cannot reach the Dask scheduler at {self.scheduler!r}: "
                                  f"{exc}. Start one with `dask scheduler` or use "
                                  "--dask-local N.") from exc
            with client:
                yield client
            return
        with LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, env=dict(WORKER_ENV)) as cluster, \
                Client(cluster) as client:
            yield client

    def run(self, points, store_weights):
        from distributed import as_completed
        tasks = sorted(_tasks(points, store_weights), key=_cost)
        with self._client() as client:
            futures = {client.submit(run_point, t, key=f"neuroenergy-run-{t['key']}",
                                     pure=False): t for t in tasks}
            try:
                for future in as_completed(list(futures)):
                    task = futures[future]
                    try:
                        record = future.result()
                    except Exception as exc:  # KilledWorker after repeated worker deaths
                        record = _died_record(task, f"the Dask worker running this point "
                                              f"failed: {type(exc).__name__}: {exc}")
                    future.release()
                    yield record
            finally:
                client.cancel(list(futures))


def make_executor(name, workers=None, scheduler=None):
    if workers is not None and workers < 1:
        raise ConfigError(f"The '--workers' option must be an int >= 1. Got {workers} instead.")
    if scheduler is not None and name != "dask":
        name = "dask"
    if name == "serial":
        return SerialExecutor()
    elif name == "processes":
        return ProcessExecutor(workers)
    elif name == "dask":
        return DaskExecutor(workers, scheduler)
    raise ConfigError(f"The '--executor' option must be one of {', '.join(EXECUTORS)}. Got "
                      f"{name!r} instead.")

"""Cost of the compiled hardware tallies per weight write, per kind of device.

    .venv/bin/python benchmarks/bench_tally.py [--before] [--reps N] [--quick]

Prints one table, nanoseconds per call (per write for the kernel), median over interleaved
repetitions of thread CPU time (the honest per-core cost on a shared machine), with the
baseline of the same loop without any device beside it:

- ``loop``: a tight compiled loop of ``tally_write(params[0], stats[0, 0], w, w + dw, 0.5)``
  (views formed at every call, as a kernel does; /tmp/tb.py); ``loop rng`` draws ``u =
  np.random.random()`` first (its cost, about 10-15 ns, is in the baseline too);
- ``stream``: the writes of one dense 785 x 100 update (w ~ N(0, .03), dw = -0.01 pre post,
  pre ~ N(0, .3), post ~ N(0, .1)) with precomputed ``u``: realistic branches;
- ``row`` / ``device``: ``tally_row`` and ``device_write`` in the same kind of loop;
- ``write_pairs``: ``neuroenergy.kernels.write_pairs`` on that dense update with one device
  (per write, the kernel's own work and one ``np.random.random()`` per device included);
  ``wp u-first`` is the same kernel with each ``np.random.random()`` argument of the tally
  calls moved to a statement before the call (the change recommended in tally.py), compiled
  here from the kernel's source.

``--before`` adds the same columns for the tallies as they were before they were made
inlinable (``tests/hardware_models/tally_frozen.py``; write_pairs compiled against them).

Kernels inline the tally code and numba's cache does not notice when tally.py changes, so this
script uses its own cache folder, keyed by the sources it times (``NUMBA_CACHE_DIR`` wins if
set). Compiling takes a minute or two the first time.
"""
import hashlib
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
_key = hashlib.sha1(b"".join((ROOT / f).read_bytes() for f in (
    "hardware_models/tally.py", "hardware_models/tally_rows.py", "neuroenergy/kernels.py",
    "neuroenergy/row_tally.py", "tests/hardware_models/tally_frozen.py")) + Path(__file__).read_bytes()).hexdigest()[:12]
os.environ.setdefault("NUMBA_CACHE_DIR",
                      str(Path(tempfile.gettempdir()) / f"neuroenergy-bench-tally-{_key}"))
for _p in (str(ROOT), str(ROOT / "tests" / "hardware_models")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import argparse  # noqa: E402
import inspect  # noqa: E402
import re  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from hardware_models import presets  # noqa: E402
from hardware_models import tally as T  # noqa: E402

# one preset per code path: biology, digital (nearest), analog ceil / nearest / stochastic,
# stochastic pair (refresh terms)
KINDS = ("biology-low", "sram-22nm", "rram-neurosim", "rram-ideal", "ecram", "pcm")
W_MAX = 0.5  # as neuroenergy.hardware maps electronic devices
M, N = 785, 100


def model(name):
    m = presets.get(name)
    return m if m.kind == "biology" else presets.get(name, w_max=W_MAX)


def dense_update():
    rng = np.random.default_rng(0)
    w = rng.normal(0, .03, (M, N)).astype(np.float32)
    pre = rng.normal(0, .3, M).astype(np.float32)
    post = rng.normal(0, .1, N).astype(np.float32)
    return w, pre, post


# ----------------------------------------------------------------------------- loops

def loops(mod):
    """Compiled loops around one tally module's functions (the baseline when mod is None)."""
    if mod is None:
        @numba.njit
        def loop(params, stats, n):
            s = 0.0
            for t in range(n):
                s += 0.1 + 1e-3 * (t % 7)
            return s

        @numba.njit
        def loop_rng(params, stats, n):
            s = 0.0
            for t in range(n):
                s += 0.1 + 1e-3 * (t % 7) + np.random.random()
            return s

        @numba.njit
        def stream(params, stats, wo, wn, us):
            s = 0.0
            for t in range(wo.shape[0]):
                s += wn[t] - wo[t] + us[t]
            return s

        @numba.njit
        def row(params, stats, n):
            s = 0.0
            for t in range(n):
                s += 1.0 * (t % 3) + (3 + t % 5)
            return s

        @numba.njit
        def device(params, stats, n):
            s = 0.0
            for t in range(n):
                s += 0.1 + 1e-3 * (t % 5) + 1e-3 * (t % 7)
            return s
        return dict(loop=loop, loop_rng=loop_rng, stream=stream, row=row, device=device)

    tw, tr, dv = mod.tally_write, mod.tally_row, mod.device_write

    @numba.njit
    def loop(params, stats, n):
        s = 0.0
        for t in range(n):
            s += tw(params[0], stats[0, 0], 0.1, 0.1 + 1e-3 * (t % 7), 0.5)
        return s

    @numba.njit
    def loop_rng(params, stats, n):
        s = 0.0
        for t in range(n):
            u = np.random.random()
            s += tw(params[0], stats[0, 0], 0.1, 0.1 + 1e-3 * (t % 7), u)
        return s

    @numba.njit
    def stream(params, stats, wo, wn, us):
        s = 0.0
        for t in range(wo.shape[0]):
            s += tw(params[0], stats[0, 0], wo[t], wn[t], us[t])
        return s

    @numba.njit
    def row(params, stats, n):
        s = 0.0
        for t in range(n):
            tr(params[0], stats[0, 0], 3 + t % 5, 1.0 * (t % 3))
        return s

    @numba.njit
    def device(params, stats, n):
        s = 0.0
        for t in range(n):
            s += dv(params[0], 0.1 + 1e-3 * (t % 5), 1e-3 * (t % 7), 0.5, 0.1)
        return s
    return dict(loop=loop, loop_rng=loop_rng, stream=stream, row=row, device=device)


# ----------------------------------------------------------------------------- write_pairs

def _hoist_random(src):
    """Move each ``np.random.*()`` argument of a tally_write / device_write call to
    statements just before the call (same draws, same order)."""
    lines = src.split("\n")
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.search(r"(tally_write|device_write)\(", line)
        if not m:
            out.append(line)
            i += 1
            continue
        j, depth = i, line.count("(") - line.count(")")
        while depth > 0:  # the statement ends where its parentheses close
            j += 1
            depth += lines[j].count("(") - lines[j].count(")")
        stmt = lines[i:j + 1]
        draws = re.findall(r"np\.random\.\w+\(\)", "\n".join(stmt))
        indent = re.match(r"\s*", line).group(0)
        names = []
        for k, draw in enumerate(draws):
            names.append(f"_r{k}")
            out.append(f"{indent}_r{k} = {draw}")
        text = "\n".join(stmt)
        for draw, name in zip(draws, names):
            text = text.replace(draw, name, 1)
        out.extend(text.split("\n"))
        i = j + 1
    return "\n".join(out)


def kernel_variant(mod=None, hoist=False):
    """``write_pairs`` compiled from neuroenergy.kernels' source against tally module ``mod``
    (the current one if None), its random draws optionally hoisted."""
    from neuroenergy import kernels
    ns = dict(vars(kernels))
    if mod is not None:
        ns.update(tally_write=mod.tally_write, tally_row=mod.tally_row,
                  device_write=mod.device_write)
    for name in ("_write_pairs_impl", "write_pairs"):
        fn = getattr(kernels, name, None)
        if fn is None:
            continue
        src = textwrap.dedent(inspect.getsource(fn.py_func))
        src = re.sub(r"^@numba\.njit\([^)]*\)\n", "@numba.njit\n", src, flags=re.M)
        if hoist:
            src = _hoist_random(src)
        exec(compile(src, f"<bench {name}>", "exec"), ns)
    return ns["write_pairs"]


# ----------------------------------------------------------------------------- timing

def timed(fn, args, per):
    t = time.thread_time()
    fn(*args)
    return (time.thread_time() - t) / per * 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", action="store_true",
                    help="also time the tallies before the rewrite (tally_frozen)")
    ap.add_argument("--reps", type=int, default=15, help="interleaved repetitions")
    ap.add_argument("--quick", action="store_true", help="fewer calls per timing")
    args = ap.parse_args(argv)
    n_loop = 200_000 if args.quick else 1_000_000

    from neuroenergy import kernels
    w0, pre, post = dense_update()
    ii, jj = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
    si, sj = ii.ravel().astype(np.int64), jj.ravel().astype(np.int64)
    wo = w0.astype(np.float64).ravel()
    wn = wo + (-0.01 * pre.astype(np.float64)[:, None] * post.astype(np.float64)[None, :]).ravel()
    us = np.random.default_rng(1).random(wo.size)

    impls = {"now": T}
    if args.before:
        import tally_frozen
        impls["before"] = tally_frozen
    print(f"numba cache: {os.environ['NUMBA_CACHE_DIR']}", file=sys.stderr)
    print("compiling ...", file=sys.stderr, flush=True)
    lp = {"base": loops(None)}
    lp.update({k: loops(m) for k, m in impls.items()})
    wp = {"now": kernels.write_pairs, "now u-first": kernel_variant(hoist=True)}
    if args.before:
        wp["before"] = kernel_variant(impls["before"])

    # jobs: (row label, column label, callable, args, calls per run)
    jobs = []
    for kind in ("none",) + KINDS:
        for impl, fns in lp.items():
            if (kind == "none") != (impl == "base"):
                continue
            mod = T if impl == "base" else impls[impl]
            params = (np.zeros((1, T.N_PARAMS)) if kind == "none"
                      else np.ascontiguousarray(mod.pack_kernel_params([model(kind)])))
            stats = np.zeros((2, 1, T.N_STATS))
            tag = "" if impl in ("base", "now") else f" {impl}"
            jobs += [(kind, "loop" + tag, fns["loop"], (params, stats, n_loop), n_loop),
                     (kind, "loop rng" + tag, fns["loop_rng"], (params, stats, n_loop), n_loop),
                     (kind, "stream" + tag, fns["stream"], (params, stats, wo, wn, us), wo.size),
                     (kind, "row" + tag, fns["row"], (params, stats, n_loop), n_loop),
                     (kind, "device" + tag, fns["device"], (params, stats, n_loop), n_loop)]
        for label, fn in wp.items():
            mod = impls.get(label.split()[0], T)
            names = () if kind == "none" else (kind,)
            if kind == "none" and label != "now":
                continue
            params = (np.zeros((0, 1)) if not names
                      else np.ascontiguousarray(mod.pack_kernel_params([model(kind)])))
            stats = np.zeros((2, len(names), T.N_STATS if names else 1))
            wargs = (w0.copy(), pre, post, 0.01, si, sj, si.size, 0, -1.0,
                     np.zeros(2, np.int64), np.zeros((2, 3)), np.zeros((M, N), np.int32),
                     params, stats, -1)
            col = "write_pairs" if label == "now" else f"wp {label}"
            jobs.append((kind, col, fn, wargs, si.size))
    for _, _, fn, a, _ in jobs:  # compile (or load) everything before timing
        fn(*a)
    print("timing ...", file=sys.stderr, flush=True)
    times = {(k, c): [] for k, c, *_ in jobs}
    for _ in range(args.reps):
        for k, c, fn, a, per in jobs:
            times[k, c].append(timed(fn, a, per))

    cols = []
    for _, c, *_ in jobs:
        if c not in cols:
            cols.append(c)
    med = {key: float(np.median(v)) for key, v in times.items()}
    width = max(len(c) for c in cols) + 1
    print(f"ns per call (write_pairs: per write), median of {args.reps} interleaved runs, "
          f"thread CPU time; 'none' is the same loop without a device")
    print(f"{'device':14s}" + "".join(f"{c:>{width}s}" for c in cols))
    for kind in ("none",) + KINDS:
        cells = [f"{med[kind, c]:{width}.1f}" if (kind, c) in med else " " * (width - 1) + "-"
                 for c in cols]
        print(f"{kind:14s}" + "".join(cells))
    print("\nover the baseline (the tally's own cost):")
    print(f"{'device':14s}" + "".join(f"{c:>{width}s}" for c in cols))
    for kind in KINDS:
        cells = []
        for c in cols:
            base_col = "write_pairs" if c.startswith(("write_pairs", "wp")) else c.split()[0] + (
                " rng" if c.startswith("loop rng") else "")
            if (kind, c) in med and ("none", base_col) in med:
                cells.append(f"{med[kind, c] - med['none', base_col]:{width}.1f}")
            else:
                cells.append(" " * (width - 1) + "-")
        print(f"{kind:14s}" + "".join(cells))


if __name__ == "__main__":
    main()

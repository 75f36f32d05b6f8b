"""Cached kernels are dropped when the code they embed changes (``_kernel_cache.refresh``),
and only the files of the named modules."""
from types import SimpleNamespace

from hardware_models import _kernel_cache


def _dispatcher(folder):
    return SimpleNamespace(_cache=SimpleNamespace(_cache_path=str(folder)))


def test_refresh_drops_the_named_cache_files_when_a_dependency_changes(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    dep = tmp_path / "dep.py"
    dep.write_text("x = 1\n")
    names = ["mine.f-1.py311.nbi", "mine.f-1.py311.1.nbc", "helper.g-2.py311.nbi",
             "other.h-3.py311.nbi", "mine.notes.txt"]
    for name in names:
        (cache / name).write_text("")
    disp = _dispatcher(cache)
    args = ([dep], "mine.deps.sha256", ("mine.", "helper."))
    assert _kernel_cache.refresh(disp, *args)  # no stamp yet: dropped, stamp written
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        ["other.h-3.py311.nbi", "mine.notes.txt", "mine.deps.sha256"])
    (cache / "mine.f-1.py311.nbi").write_text("")
    assert not _kernel_cache.refresh(disp, *args)  # unchanged: kept
    assert (cache / "mine.f-1.py311.nbi").exists()
    dep.write_text("x = 2\n")
    assert _kernel_cache.refresh(disp, *args)  # changed: dropped again
    assert not (cache / "mine.f-1.py311.nbi").exists()


def test_refresh_drops_the_modules_beside_the_kernel_by_default(tmp_path):
    """Without prefixes, the cached files dropped are those of the dependency files in the
    folder of the dispatcher's own source, not of files elsewhere or of other modules."""
    pkg, far = tmp_path / "pkg", tmp_path / "far"
    cache = pkg / "__pycache__"
    for folder in (pkg, far, cache):
        folder.mkdir()
    deps = [pkg / "mine.py", pkg / "helper.py", far / "remote.py"]
    for dep in deps:
        dep.write_text("x = 1\n")
    names = ["mine.f-1.py311.nbi", "helper.g-2.py311.1.nbc", "remote.h-3.py311.nbi",
             "other.k-4.py311.nbi"]
    for name in names:
        (cache / name).write_text("")
    disp = SimpleNamespace(_cache=SimpleNamespace(_cache_path=str(cache)),
                           py_func=SimpleNamespace(
                               __code__=SimpleNamespace(co_filename=str(pkg / "mine.py"))))
    assert _kernel_cache.refresh(disp, deps, "mine.deps.sha256")
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        ["remote.h-3.py311.nbi", "other.k-4.py311.nbi", "mine.deps.sha256"])


def test_refresh_never_raises(tmp_path):
    assert not _kernel_cache.refresh(_dispatcher(tmp_path / "missing"), [tmp_path / "nope.py"],
                                     "x.sha256", ("x.",))


def _stamped_layers():
    import hardware_models.llvm_ops as llvm_ops
    import hardware_models.tally as tally
    import hardware_models.tally_rows as tally_rows
    from neuroenergy import general_kernel, sgd_kernel
    from neuroenergy.spiking import learn_hardware
    return [
        (tally_rows.tally_batch, "tally_rows.deps.sha256",
         [llvm_ops.__file__, tally.__file__, tally_rows.__file__]),
        (learn_hardware.tally_history, "learn_hardware.deps.sha256",
         [llvm_ops.__file__, tally.__file__, learn_hardware.__file__]),
        (sgd_kernel._chunk_plain, "sgd_kernel.deps.sha256", sgd_kernel._dependency_files()),
        (general_kernel.train_chunk_general, "general_kernel.deps.sha256",
         general_kernel._dependency_files()),
    ]


def test_every_layer_that_inlines_other_files_is_stamped_at_import():
    """Each module whose cached functions embed code of other files keeps a stamp of those
    files next to its cache (tally_rows inlines tally.py: without its stamp, an edited
    tally.py left the row tallies running the old code)."""
    from pathlib import Path
    import hardware_models.llvm_ops as llvm_ops
    for dispatcher, stamp_name, files in _stamped_layers():
        stamp = Path(dispatcher._cache._cache_path) / stamp_name
        assert stamp.read_text().strip() == _kernel_cache._digest(files), stamp_name
        # every layer embeds llvm_ops' operations
        assert llvm_ops.__file__ in files, stamp_name

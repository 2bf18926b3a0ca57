"""Dataset loading: IDX parsing, directory lookup, the test-only split, digits, and downloads."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import re
import shutil
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from blackout.experiment.data import sources
from blackout.experiment.data.sources import Dataset, cache_dir, download, load_dataset, read_idx
from blackout.errors import DataError

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared/data/mnist"
SHARED_MNIST_FULL = SHARED_MNIST.with_name("mnist-full")
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


# --------------------------------------------------------------------------- fixture helpers


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """Hand-built IDX: big-endian magic 0x000008<ndim>, one uint32 per dimension, then the bytes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    magic = 0x0800 | arr.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, *, gz: bool = True, magic: int | None = None) -> Path:
    data = idx_bytes(arr, magic)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def make_images(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def write_set(directory: Path, n_train: int = 30, n_test: int = 10, *, train: bool = True, test: bool = True) -> dict:
    """A small MNIST-format directory; returns the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    xtr, ytr = make_images(n_train, seed=1)
    xte, yte = make_images(n_test, seed=2)
    if train:
        write_idx(directory / FILES[0], xtr)
        write_idx(directory / FILES[1], ytr)
    if test:
        write_idx(directory / FILES[2], xte)
        write_idx(directory / FILES[3], yte)
    return {"xtr": xtr, "ytr": ytr, "xte": xte, "yte": yte}


def as_uint8(x: torch.Tensor) -> np.ndarray:
    return np.rint(x.squeeze(1).numpy() * 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """No test may touch the real user cache or the network."""
    monkeypatch.setenv("BLACKOUT_DATA_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.setenv("BLACKOUT_MIRRORS", "http://127.0.0.1:9/")
    return tmp_path / "user-cache"


# --------------------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    """Images and labels written with hand-built headers read back identical, gzipped or not."""
    x, y = make_images(7)
    xi = read_idx(write_idx(tmp_path / "img", x, gz=gz), ndim=3)
    yi = read_idx(write_idx(tmp_path / "lab", y, gz=gz), ndim=1)
    assert xi.dtype == np.uint8 and xi.shape == (7, 28, 28)
    np.testing.assert_array_equal(xi, x)
    np.testing.assert_array_equal(yi, y)


def test_idx_bad_magic_names_file(tmp_path):
    """A float IDX (dtype byte 0x0D) or a label file where images are expected is rejected."""
    p = write_idx(tmp_path / "float.gz", np.zeros((2, 3, 3)), magic=0x00000D03)
    with pytest.raises(DataError, match=re.escape(str(p)) + r": bad magic number 0x00000d03; expected 0x00000803"):
        read_idx(p, ndim=3)
    q = write_idx(tmp_path / "labels.gz", np.zeros(4))
    with pytest.raises(DataError, match=re.escape(str(q)) + r": bad magic number 0x00000801; expected 0x00000803"):
        read_idx(q, ndim=3)


def test_idx_truncated_gzip_names_file(tmp_path):
    """A download cut short must not be read as a smaller dataset."""
    x, _ = make_images(5)
    full = gzip.compress(idx_bytes(x))
    p = tmp_path / "cut.gz"
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match=re.escape(str(p)) + r": truncated or corrupt gzip stream"):
        read_idx(p)


@pytest.mark.parametrize("delta", [-1, +1])
def test_idx_wrong_length_names_file(tmp_path, delta):
    """The payload must be exactly the product of the header's dimensions."""
    data = idx_bytes(np.zeros((3, 4, 5)))
    p = tmp_path / "len"
    p.write_bytes(data[:-1] if delta < 0 else data + b"\0")
    with pytest.raises(
        DataError, match=re.escape(str(p)) + rf": {60 + delta} data bytes after the header; expected 3 x 4 x 5 = 60"
    ):
        read_idx(p)


def test_idx_header_whose_dimensions_overflow_is_an_error_not_a_crash(tmp_path):
    """4 x 2^32-1 per dimension: the product exceeds 64 bits and must still be compared exactly."""
    import struct

    p = tmp_path / "huge"
    p.write_bytes(struct.pack(">I", 0x0804) + struct.pack(">4I", *[0xFFFFFFFF] * 4) + b"\0" * 16)
    with pytest.raises(
        DataError,
        match=re.escape(str(p)) + r": 16 data bytes after the header; expected "
        r"4294967295 x 4294967295 x 4294967295 x 4294967295 = 3402823\d+",
    ):
        read_idx(p)


def test_idx_too_short(tmp_path):
    p = tmp_path / "short"
    p.write_bytes(b"\0\0")
    with pytest.raises(DataError, match=re.escape(str(p)) + ": 2 bytes is too short"):
        read_idx(p)


def test_mismatched_counts_name_both_files(tmp_path):
    """Five images with four labels: the error names both files."""
    d = tmp_path / "d"
    d.mkdir()
    x, y = make_images(5)
    write_idx(d / FILES[2], x)
    write_idx(d / FILES[3], y[:4])
    pattern = re.escape(f"{d / FILES[2]} has 5 images but {d / FILES[3]} has 4 labels")
    with pytest.raises(DataError, match=pattern):
        load_dataset("mnist", d)


def test_label_out_of_range_names_file(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    x, y = make_images(5)
    y[3] = 12
    write_idx(d / FILES[2], x)
    write_idx(d / FILES[3], y)
    with pytest.raises(
        DataError, match=re.escape(str(d / FILES[3])) + ": label 12 at index 3; expected class labels 0-9"
    ):
        load_dataset("mnist", d)


# --------------------------------------------------------------------------- directory lookup


def test_full_directory_loads_as_written(tmp_path):
    """Four files give the train and test sets unchanged, as float32 in [0, 1] and int64 labels."""
    arrays = write_set(tmp_path / "full")
    ds = load_dataset("mnist", tmp_path / "full")
    assert ds.source == str(tmp_path / "full") and ds.n_classes == 10
    assert ds.note == f"the standard split: 30 train / 10 test images from {tmp_path / 'full'}"
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.x_train.is_contiguous() and ds.x_test.is_contiguous()
    assert float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) <= 1.0
    np.testing.assert_array_equal(as_uint8(ds.x_train), arrays["xtr"])
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["yte"])


def test_plain_files_and_name_subfolder(tmp_path):
    """Un-gzipped files are accepted, and data_dir may hold a <name>/ subfolder."""
    sub = tmp_path / "root" / "fashion-mnist"
    sub.mkdir(parents=True)
    x, y = make_images(10)
    write_idx(sub / "t10k-images-idx3-ubyte", x, gz=False)
    write_idx(sub / "t10k-labels-idx1-ubyte", y, gz=False)
    ds = load_dataset("fashion-mnist", tmp_path / "root")
    assert ds.source == str(sub)
    assert len(ds.x_train) + len(ds.x_test) == 10


def test_missing_data_dir_names_it(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=re.escape(str(missing)) + ": data directory does not exist"):
        load_dataset("mnist", missing)


def test_empty_data_dir_names_it(tmp_path, isolated_cache):
    """An explicit data_dir with nothing usable is an error, never a silent fallback to download."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=re.escape(str(empty)) + ": no IDX files found"):
        load_dataset("mnist", empty)
    assert not isolated_cache.exists()


def test_train_without_test_files_is_an_error(tmp_path):
    write_set(tmp_path / "tr", test=False)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "tr")) + ": has training files but no test files"):
        load_dataset("mnist", tmp_path / "tr")


def test_incomplete_set_is_an_error(tmp_path):
    d = tmp_path / "half"
    write_set(d)
    (d / FILES[1]).unlink()
    with pytest.raises(DataError, match=re.escape(str(d)) + ": incomplete IDX set; missing train-labels-idx1-ubyte"):
        load_dataset("mnist", d)


def test_unknown_name():
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BLACKOUT_DATA_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BLACKOUT_DATA_CACHE")
    assert cache_dir().parts[-2:] == ("blackout", "data")


def test_user_cache_is_used_before_download(isolated_cache):
    """A complete set in <cache>/<name>/ is loaded without any network access."""
    arrays = write_set(isolated_cache / "mnist")
    ds = load_dataset("mnist")
    assert ds.source == str(isolated_cache / "mnist")
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["ytr"])


def test_repeated_loads_are_served_from_memory(tmp_path):
    """Same files, same process: the same tensors, not a second read."""
    write_set(tmp_path / "m")
    assert load_dataset("mnist", tmp_path / "m") is load_dataset("mnist", tmp_path / "m")


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (SHARED_MNIST / FILES[2]).exists(), reason="shared MNIST test files absent")
def test_shared_mnist_test_only_split(tmp_path):
    """The 10,000 official test images split 8,000/2,000, reproducibly, as a partition of the file."""
    ds = load_dataset("mnist", SHARED_MNIST)
    assert ds.x_train.shape == (8000, 1, 28, 28) and ds.x_test.shape == (2000, 1, 28, 28)
    assert ds.note == (
        f"only the 10,000 test images were found in {SHARED_MNIST}: "
        "split into 8,000 train / 2,000 test by a fixed permutation (seed 0)"
    )

    raw_x = read_idx(SHARED_MNIST / FILES[2], ndim=3)
    raw_y = read_idx(SHARED_MNIST / FILES[3], ndim=1)
    assert raw_x.shape == (10000, 28, 28)
    hist = np.bincount(ds.y_train.numpy(), minlength=10) + np.bincount(ds.y_test.numpy(), minlength=10)
    np.testing.assert_array_equal(hist, np.bincount(raw_y, minlength=10))

    def rows(x: np.ndarray, y: np.ndarray) -> list[bytes]:
        return sorted(xi.tobytes() + bytes([yi]) for xi, yi in zip(x, y))

    got_x = np.concatenate([as_uint8(ds.x_train), as_uint8(ds.x_test)])
    got_y = np.concatenate([ds.y_train.numpy(), ds.y_test.numpy()]).astype(np.uint8)
    assert rows(got_x, got_y) == rows(raw_x, raw_y)

    perm = np.random.default_rng(0).permutation(10000)
    np.testing.assert_array_equal(ds.y_test.numpy(), raw_y[perm[8000:]])

    copy = tmp_path / "copy"
    copy.mkdir()
    for f in FILES[2:]:
        shutil.copy(SHARED_MNIST / f, copy / f)
    again = load_dataset("mnist", copy)
    assert again is not ds
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)


@pytest.mark.skipif(not (SHARED_MNIST_FULL / FILES[0]).exists(), reason="shared full MNIST absent")
def test_shared_full_mnist_is_the_standard_split_and_says_so():
    """A directory with the training files gives MNIST's own 60,000 / 10,000, named in the note."""
    ds = load_dataset("mnist", SHARED_MNIST_FULL)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.note == f"the standard split: 60,000 train / 10,000 test images from {SHARED_MNIST_FULL}"
    raw_y = read_idx(SHARED_MNIST_FULL / FILES[3], ndim=1)
    np.testing.assert_array_equal(ds.y_test.numpy(), raw_y)  # the test set as published, not a split of it


@pytest.mark.skipif(not (DEBIAN_FASHION / FILES[0]).exists(), reason="Debian fashion-mnist package absent")
def test_debian_fashion_mnist(isolated_cache):
    """With an empty cache, fashion-mnist comes from the Debian package, full size."""
    ds = load_dataset("fashion-mnist")
    assert ds.source == str(DEBIAN_FASHION)
    assert ds.note == f"the standard split: 60,000 train / 10,000 test images from {DEBIAN_FASHION}"
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert set(ds.y_test.unique().tolist()) == set(range(10))
    assert float(ds.x_test.max()) == 1.0 and float(ds.x_test.min()) == 0.0
    assert [p.name for p in isolated_cache.iterdir()] == ["decoded"]  # nothing downloaded, only the decoded copy


def test_decoded_cache_serves_the_same_arrays_and_survives_damage(isolated_cache, mnist_dir):
    from blackout.experiment.data import sources

    sources._load_idx_dir.cache_clear()
    first = load_dataset("mnist", mnist_dir)
    [cached] = list((isolated_cache / "decoded").iterdir())
    sources._load_idx_dir.cache_clear()
    second = load_dataset("mnist", mnist_dir)  # from the cache this time
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert second.note == first.note and "8,000 train / 2,000 test" in second.note
    cached.write_bytes(b"not an npz")  # a damaged cache file is decoded again, not an error
    sources._load_idx_dir.cache_clear()
    third = load_dataset("mnist", mnist_dir)
    assert torch.equal(first.x_test, third.x_test)
    assert cached.read_bytes()[:2] == b"PK"  # and rewritten


def test_digits():
    """1,797 scikit-learn digits, 8x8 in [0, 1], split the same way every time and stratified."""
    ds = load_dataset("digits")
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.x_train.dtype == torch.float32
    assert len(ds.x_train) + len(ds.x_test) == 1797 and len(ds.x_test) == 360
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
    assert ds.source == "scikit-learn load_digits" and "1,437 train / 360 test" in ds.note

    from sklearn.datasets import load_digits

    y = load_digits().target
    hist = np.bincount(ds.y_train.numpy(), minlength=10) + np.bincount(ds.y_test.numpy(), minlength=10)
    np.testing.assert_array_equal(hist, np.bincount(y))
    assert np.abs(np.bincount(ds.y_test.numpy(), minlength=10) - np.bincount(y) * 0.2).max() <= 1

    sources._load_digits.cache_clear()
    again = load_dataset("digits")
    assert again is not ds and torch.equal(again.x_test, ds.x_test) and torch.equal(again.y_train, ds.y_train)


def test_dataset_repr_is_short():
    ds = load_dataset("digits")
    assert len(repr(ds)) < 400 and "x_train=(1437, 1, 8, 8)" in repr(ds)
    assert isinstance(ds, Dataset)


# --------------------------------------------------------------------------- downloads


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server with mirrors good/ (fixture files), bad/ (corrupted) and empty/ (404)."""
    root = tmp_path / "www"
    arrays = write_set(root / "good", n_train=20, n_test=10)
    (root / "bad").mkdir()
    (root / "empty").mkdir()
    sums = {}
    for f in FILES:
        data = (root / "good" / f).read_bytes()
        sums[f] = hashlib.md5(data).hexdigest()
        corrupt = bytearray(data)
        corrupt[-12] ^= 0xFF
        (root / "bad" / f).write_bytes(bytes(corrupt))
    monkeypatch.setitem(sources.CHECKSUMS, "mnist", sums)

    requests: list[str] = []

    class Handler(_Handler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield {"base": base, "arrays": arrays, "requests": requests}
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_fills_cache(server, tmp_path):
    """A download lands in <cache>/<name>/ with the served content, no temp files left behind."""
    cache = tmp_path / "cache"
    ds = load_dataset("mnist", cache_dir=cache, mirrors=[server["base"] + "/good/"])
    assert ds.source == str(cache / "mnist")
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(FILES)
    np.testing.assert_array_equal(as_uint8(ds.x_train), server["arrays"]["xtr"])
    np.testing.assert_array_equal(ds.y_test.numpy(), server["arrays"]["yte"])
    assert sorted(r.rsplit("/", 1)[-1] for r in server["requests"]) == sorted(FILES)  # the training files too
    assert ds.note.startswith("the standard split: 20 train / 10 test images")

    download("mnist", cache / "mnist", mirrors=[server["base"] + "/good/"])
    assert len(server["requests"]) == 4, "verified files already present must not be fetched again"


def test_failing_mirrors_fall_through(server, tmp_path):
    """Refused connection, then 404, then a good mirror: the good one is used."""
    refused = f"http://127.0.0.1:{_closed_port()}/"
    download("mnist", tmp_path / "dl", mirrors=[refused, server["base"] + "/empty/", server["base"] + "/good"])
    for f in FILES:
        assert (tmp_path / "dl" / f).read_bytes() == (tmp_path / "www" / "good" / f).read_bytes()


def test_env_mirrors(server, tmp_path, monkeypatch):
    """$BLACKOUT_MIRRORS replaces the built-in list; {name} expands to the dataset name."""
    (tmp_path / "www" / "mnist").symlink_to(tmp_path / "www" / "good")
    monkeypatch.setenv("BLACKOUT_MIRRORS", f"http://127.0.0.1:{_closed_port()}/, {server['base']}/{{name}}/")
    ds = load_dataset("mnist", cache_dir=tmp_path / "cache")
    assert len(ds.x_train) == 20


def test_timeout_falls_through(server, tmp_path):
    """A mirror that accepts but never answers is abandoned after the timeout, then tried last."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        stalled = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        download("mnist", tmp_path / "dl", mirrors=[stalled, server["base"] + "/good/"], timeout=0.2)
        silent.setblocking(False)
        attempts = 0
        while True:
            try:
                silent.accept()[0].close()
            except BlockingIOError:
                break
            attempts += 1
    assert attempts == 1
    assert len(server["requests"]) == 4
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == sorted(FILES)


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    """Corrupted bytes from the only mirror: an error naming file and mirror, and an empty cache dir."""
    cache = tmp_path / "cache"
    url = server["base"] + "/bad/"
    pattern = re.escape(
        f"{cache / 'mnist' / FILES[0]}: could not download {FILES[0]} from any mirror ({url}{FILES[0]}: MD5 "
    )
    with pytest.raises(DataError, match=pattern + r"[0-9a-f]{32} does not match the expected"):
        load_dataset("mnist", cache_dir=cache, mirrors=[url])
    assert list((cache / "mnist").iterdir()) == []


def test_all_mirrors_fail_lists_each(server, tmp_path):
    refused = f"http://127.0.0.1:{_closed_port()}/"
    missing = server["base"] + "/empty/"
    with pytest.raises(DataError) as err:
        download("mnist", tmp_path / "dl", mirrors=[refused, missing])
    msg = str(err.value)
    assert f"{refused}{FILES[0]}: Connection refused" in msg
    assert f"{missing}{FILES[0]}: HTTP 404" in msg
    assert "\n" not in msg
    assert list((tmp_path / "dl").iterdir()) == []


# --------------------------------------------------------------------------- the data's shape and identity


@pytest.mark.parametrize("side", [27, 1, 29])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_known_datasets_refuse_images_of_another_size(tmp_path, name, side):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / FILES[2], rng.integers(0, 256, size=(20, side, side), dtype=np.uint8))
    write_idx(tmp_path / FILES[3], (np.arange(20) % 10).astype(np.uint8))
    with pytest.raises(
        DataError,
        match=rf"t10k-images-idx3-ubyte.gz: holds {side}x{side} images; expected 28x28 "
        rf"images for {name}",
    ):
        load_dataset(name, tmp_path)


def test_identity_is_the_shape_counts_and_a_hash_of_the_content(tmp_path):
    write_set(tmp_path / "a")
    write_set(tmp_path / "b")  # the same arrays, elsewhere
    write_set(tmp_path / "c")
    write_idx(tmp_path / "c" / FILES[2], make_images(10, seed=7)[0])  # other test images, same shape and count
    a, b, c = (load_dataset("mnist", tmp_path / n) for n in "abc")
    arrays = write_set(tmp_path / "ref")
    h = hashlib.sha256()
    for k in ("xtr", "ytr", "xte", "yte"):
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    assert a.identity == f"28x28 30+10 {h.hexdigest()[:16]}"
    assert b.identity == a.identity and c.identity != a.identity
    sources._load_idx_dir.cache_clear()  # the identity is kept with the decoded copy
    assert load_dataset("mnist", tmp_path / "a").identity == a.identity
    assert re.fullmatch(r"8x8 1437\+360 [0-9a-f]{16}", load_dataset("digits").identity)


def test_different_data_never_share_a_run_id(tmp_path):
    """The run id of a run on other images differs, on images of the same content it is the same; a
    config planned on one data set refuses to train on another."""
    from blackout.config import RunConfig
    from blackout.experiment.data.sources import identified

    for n in "abc":
        write_set(tmp_path / n)
    write_idx(tmp_path / "c" / FILES[2], make_images(10, seed=7)[0])
    cfg = RunConfig.from_flat(
        {"dataset": "mnist", "tasks": 1, "iterations": 1, "hidden": "4", "sharpness": 0, "test_limit": 0}
    )
    a, b, c = (identified(cfg, load_dataset("mnist", tmp_path / n)) for n in "abc")
    assert a.run_id == b.run_id != c.run_id and len({a.run_id, c.run_id, cfg.run_id}) == 3
    assert a.data.data_id == load_dataset("mnist", tmp_path / "a").identity
    assert identified(a, load_dataset("mnist", tmp_path / "b")) == a
    with pytest.raises(
        DataError,
        match=rf"{tmp_path / 'c'}: holds the data 28x28 30\+10 [0-9a-f]{{16}}, but this run "
        rf"was planned on {re.escape(a.data.data_id)}",
    ):
        identified(a, load_dataset("mnist", tmp_path / "c"))


# --------------------------------------------------------------------------- decompression bombs


def test_a_decompression_bomb_is_refused_within_bounded_memory(tmp_path):
    """A gzip of about 0.2 MB whose header promises 10 images but which expands to 200 MB: refused
    after decompressing little more than the header promises (peak memory measured in a fresh process)."""
    import subprocess
    import sys
    import zlib

    bomb = tmp_path / FILES[2]
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    parts = [comp.compress(idx_bytes(np.zeros((10, 28, 28), np.uint8)))]
    zeros = bytes(1 << 20)
    parts += [comp.compress(zeros) for _ in range(200)]
    bomb.write_bytes(b"".join(parts) + comp.flush())
    assert bomb.stat().st_size < 1 << 20
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from blackout.experiment.data.sources import read_idx\n"
        "from blackout.errors import DataError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    read_idx(Path(sys.argv[1]), ndim=3)\n"
        "except DataError as e:\n"
        "    print(e)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    message, grown_mib = out.stdout.strip().splitlines()
    assert int(grown_mib) < 32, grown_mib
    assert f"{bomb}: holds more than the header's 10 x 28 x 28 = 7840 data bytes" in message


def test_a_header_promising_more_than_the_file_can_hold_is_refused_before_decompressing(tmp_path):
    """Deflate expands at most about 1032-fold: a header that promises more is refused from the sizes alone."""
    small = tmp_path / "small.gz"
    small.write_bytes(gzip.compress(struct.pack(">IIII", 0x0803, 60000, 28, 28) + bytes(100)))
    with pytest.raises(
        DataError,
        match=r"small.gz: its header promises 60000 x 28 x 28 = 47040000 data bytes, more "
        r"than a gzip file of [0-9]+ bytes can hold",
    ):
        read_idx(small, ndim=3)
    plain = tmp_path / "plain"
    plain.write_bytes(struct.pack(">IIII", 0x0803, 2**31, 2**31, 28) + bytes(100))
    with pytest.raises(
        DataError, match=r"plain: 100 data bytes after the header; expected 2147483648 x 2147483648 x 28"
    ):
        read_idx(plain, ndim=3)

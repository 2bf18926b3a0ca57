"""Image classification data: scikit-learn's digits, MNIST and Fashion-MNIST.

Every dataset comes back as a :class:`Dataset` of float32 images in [0, 1] shaped (N, 1, H, W)
and int64 labels. MNIST-style data is read from the standard IDX files, looked up in this order:
an explicit ``data_dir`` (only there, if given), the user cache, Debian's ``fashion-mnist``
package, and finally a download into the cache, checked against the published MD5 sums.
A directory holding the training files gives the standard split (for MNIST 60,000 train / 10,000
test); one holding only the 10,000 test images is still usable: it is split deterministically into
8,000 / 2,000. Either way ``Dataset.note`` names the split, so every output can say what was
trained on (``TEST_ONLY_NOTE`` is how a test-only split's note begins).
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import math
import os
import socket
import struct
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ...files import FILE, FOLDER, kind
from ..result import TEST_ONLY_NOTE

NAMES = ("digits", "mnist", "fashion-mnist")
N_CLASSES = 10
IMAGE_SIZE = {"mnist": (28, 28), "fashion-mnist": (28, 28)}  # (H, W) of the IDX datasets' images

# Roles of the four IDX files, with the stem of each file's standard name.
STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
ROLES = tuple(STEMS)

MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}

# MD5 of each published .gz file (as listed by torchvision and the Fashion-MNIST README).
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

DOWNLOAD_TIMEOUT = 30.0
TEST_ONLY_SEED = 0
TEST_ONLY_FRACTION = 0.2
DIGITS_TEST_FRACTION = 0.2

_IDX_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test pair of image tensors with where they came from.

    The tensors may be shared between callers (loads are cached in-process): do not modify
    them in place.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    source: str
    note: str
    identity: str = ""  # "HxW n_train+n_test hash": different data never share it (see ``fingerprint``)
    blank: float = 0.0  # the value of an empty pixel (0, or its standardised value): what a rotation fills in

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x_train={tuple(self.x_train.shape)}, "
            f"x_test={tuple(self.x_test.shape)}, n_classes={self.n_classes}, "
            f"source={self.source!r}, note={self.note!r})"
        )


# --------------------------------------------------------------------------- IDX files


def read_idx(path: Path, *, ndim: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file, gzipped or plain (detected from its first bytes).

    ``ndim`` (3 for images, 1 for labels) makes the magic number itself part of the check.
    The returned array is a read-only view of the file's bytes.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(2) == _GZIP_MAGIC:
                f.seek(0)
                raw = _gunzip_idx(path, f, os.fstat(f.fileno()).st_size)
            else:
                f.seek(0)
                raw = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    want = f"0x{0x800 | ndim:08x}" if ndim is not None else "0x000008NN"
    what = {3: " (unsigned-byte images)", 1: " (unsigned-byte labels)"}.get(ndim or 0, " (unsigned-byte IDX)")
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header; expected magic {want}{what}")
    magic = struct.unpack(">I", raw[:4])[0]
    nd = raw[3]
    if raw[:2] != b"\0\0" or raw[2] != _IDX_UBYTE or nd == 0 or (ndim is not None and nd != ndim):
        raise DataError(f"{path}: bad magic number 0x{magic:08x}; expected {want}{what}")
    header = 4 + 4 * nd
    if len(raw) < header:
        raise DataError(f"{path}: header truncated at {len(raw)} bytes; expected {header} bytes for {nd} dimensions")
    dims = struct.unpack(f">{nd}I", raw[4:header])
    expected = math.prod(dims)  # exact: four 32-bit dimensions overflow a 64-bit product
    have = len(raw) - header
    if have != expected:
        shape = " x ".join(str(d) for d in dims)
        raise DataError(f"{path}: {have} data bytes after the header; expected {shape} = {expected}")
    return np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header).reshape(dims)


# Deflate writes at least one bit per 258 bytes of output: no gzip stream expands more than about 1032-fold.
_MAX_INFLATION = 1032


def _gunzip_idx(path: Path, f, size: int) -> bytes:
    """The decompressed bytes of gzipped IDX file ``f`` (``size`` bytes), never more than its header promises.

    The header is decompressed first; the data size it promises is then checked against what a gzip
    stream of this size can hold, and the rest is decompressed with that size as its bound, so a
    decompression bomb costs no more memory than the data it claims to be.
    """
    stream = zlib.decompressobj(wbits=31)  # gzip framing

    def inflate(limit: int) -> bytes:
        out = bytearray()
        while len(out) < limit:
            chunk = stream.unconsumed_tail or f.read(1 << 16)
            if not chunk:
                break
            out += stream.decompress(chunk, limit - len(out))
            if stream.eof:
                break
        return bytes(out)

    try:
        head = inflate(4)
        if len(head) < 4 or head[2] != _IDX_UBYTE:
            return head  # too short or not unsigned-byte IDX: read_idx says which
        head += inflate(4 * head[3])
        dims = struct.unpack(f">{head[3]}I", head[4:]) if len(head) == 4 + 4 * head[3] else None
        if dims is None:
            return head
        expected = math.prod(dims)
        if expected > _MAX_INFLATION * size:
            shape = " x ".join(str(d) for d in dims)
            raise DataError(
                f"{path}: its header promises {shape} = {expected} data bytes, more than a gzip file of "
                f"{size} bytes can hold; expected a complete gzipped IDX file"
            )
        body = inflate(expected + 1)
    except (EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: truncated or corrupt gzip stream ({exc}); expected a complete gzipped IDX file"
        ) from exc
    if len(body) > expected:
        shape = " x ".join(str(d) for d in dims)
        raise DataError(
            f"{path}: holds more than the header's {shape} = {expected} data bytes; expected exactly that many"
        )
    if not stream.eof:
        raise DataError(
            f"{path}: truncated or corrupt gzip stream (it ends before its end marker); expected a "
            "complete gzipped IDX file"
        )
    return head + body


def _find_file(directory: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``directory``: gzipped, plain, or with the dotted Kaggle-style name."""
    dotted = stem.replace("-idx", ".idx", 1)
    for candidate in (f"{stem}.gz", stem, f"{dotted}.gz", dotted):
        p = directory / candidate
        what = kind(p)
        if what == FILE:
            return p
        if what not in (None, FOLDER):  # a pipe or a device would block or stream forever: never open it
            raise DataError(f"{p}: is {what}, expected a regular IDX file")
    return None


def _scan(directory: Path) -> dict[str, Path]:
    """Which of the four IDX files ``directory`` holds, by role."""
    if not directory.is_dir():
        return {}
    found = {}
    for role, stem in STEMS.items():
        p = _find_file(directory, stem)
        if p is not None:
            found[role] = p
    return found


def _check_usable(directory: Path, found: dict[str, Path]) -> None:
    """Raise unless ``found`` is either all four files or exactly the two test files."""
    test = {"test_images", "test_labels"}
    if set(found) == set(ROLES) or set(found) == test:
        return
    missing = [STEMS[r] for r in ROLES if r not in found]
    if not found:
        raise DataError(
            f"{directory}: no IDX files found; expected {STEMS['test_images']}[.gz] and the other MNIST-format files"
        )
    if not test & set(found):
        raise DataError(
            f"{directory}: has training files but no test files; expected {STEMS['test_images']}[.gz] "
            f"and {STEMS['test_labels']}[.gz] beside them"
        )
    raise DataError(f"{directory}: incomplete IDX set; missing {', '.join(missing)}[.gz]")


# --------------------------------------------------------------------------- loading


def _to_images(arr: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]; torch's conversion is the faster one."""
    n, h, w = arr.shape
    with warnings.catch_warnings():  # a read-only view of the file's bytes: copied by the conversion at once
        warnings.simplefilter("ignore", UserWarning)
        raw = torch.from_numpy(np.ascontiguousarray(arr))
    return raw.to(torch.float32).div_(255.0).view(n, 1, h, w)


def _to_labels(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.int64))


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has {labels.shape[0]} labels; expected equal counts"
        )
    if images.shape[0] == 0:
        raise DataError(f"{images_path}: holds no images; expected at least one")
    if labels.max() >= N_CLASSES:
        i = int(np.argmax(labels >= N_CLASSES))
        raise DataError(f"{labels_path}: label {int(labels[i])} at index {i}; expected class labels 0-{N_CLASSES - 1}")
    return images, labels


def _file_key(found: dict[str, Path]) -> tuple:
    key = []
    for role in ROLES:
        if role in found:
            p = found[role].resolve()
            st = p.stat()
            key.append((role, str(p), st.st_size, st.st_mtime_ns))
    return tuple(key)


@functools.lru_cache(maxsize=4)
def _load_idx_dir(name: str, directory: str, key: tuple) -> Dataset:
    arrays, meta = decoded(("idx", name, key), lambda: _decode_idx_dir(name, directory, key))
    note = meta["note"] or (
        f"the standard split: {len(arrays['y_train']):,} train / {len(arrays['y_test']):,} test images from {directory}"
    )
    return Dataset(
        name,
        _to_images(arrays["x_train"]),
        _to_labels(arrays["y_train"]),
        _to_images(arrays["x_test"]),
        _to_labels(arrays["y_test"]),
        N_CLASSES,
        directory,
        note,
        meta["identity"],
    )


def _decode_idx_dir(name: str, directory: str, key: tuple) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    found = {role: Path(path) for role, path, _, _ in key}
    x_te, y_te = _read_pair(found["test_images"], found["test_labels"])
    if x_te.shape[1:] != IMAGE_SIZE[name]:
        h, w = IMAGE_SIZE[name]
        raise DataError(
            f"{found['test_images']}: holds {x_te.shape[1]}x{x_te.shape[2]} images; expected {h}x{w} images for {name}"
        )
    if "train_images" not in found:
        n = x_te.shape[0]
        n_test = int(round(n * TEST_ONLY_FRACTION))
        n_train = n - n_test
        perm = np.random.default_rng(TEST_ONLY_SEED).permutation(n)
        tr, te = perm[:n_train], perm[n_train:]
        note = (
            f"{TEST_ONLY_NOTE} {n:,} test images were found in {directory}: split into "
            f"{n_train:,} train / {n_test:,} test by a fixed permutation (seed {TEST_ONLY_SEED})"
        )
        return {"x_train": x_te[tr], "y_train": y_te[tr], "x_test": x_te[te], "y_test": y_te[te]}, {"note": note}
    x_tr, y_tr = _read_pair(found["train_images"], found["train_labels"])
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(
            f"{found['train_images']} holds {x_tr.shape[1]}x{x_tr.shape[2]} images but {found['test_images']} "
            f"holds {x_te.shape[1]}x{x_te.shape[2]}; expected the same size"
        )
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}, {"note": ""}


# --------------------------------------------------------------------------- decoded cache

DECODED_VERSION = 2  # 2: the data's identity is kept with the arrays


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """The data's identity: image size, train+test counts and a hash of the decoded arrays.

    Part of every run's identity (``DataConfig.data_id``), so runs on different data never share a
    run id, even under one dataset name: the 10,000 test images split in two are not MNIST's 60,000.
    """
    h = hashlib.sha256()
    for k in ("x_train", "y_train", "x_test", "y_test"):
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    x, n_test = arrays["x_train"], len(arrays["x_test"])
    return f"{x.shape[-2]}x{x.shape[-1]} {len(x)}+{n_test} {h.hexdigest()[:16]}"


def decoded(key: tuple, build) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays decoded once and kept in the user cache as an uncompressed .npz, for ``key``, with their
    ``meta`` (the split note and the ``fingerprint``, computed once here).

    ``key`` names the sources by path, size and modification time (for digits: scikit-learn's
    version), so an edited or replaced file is decoded afresh; a checksum would read the whole
    file each time and defeat the cache. A missing, unreadable or unwritable cache only costs the
    decoding; the arrays are the same either way.
    """
    digest = hashlib.sha256(repr((DECODED_VERSION, key)).encode()).hexdigest()[:24]
    path = cache_dir() / "decoded" / f"{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if not k.startswith("meta_")}
            meta = {k[5:]: str(z[k]) for k in z.files if k.startswith("meta_")}
        if "identity" in meta:
            return arrays, meta
    except (OSError, ValueError, KeyError, zlib.error, EOFError):
        pass  # not cached yet, or a damaged cache file: decode again
    arrays, meta = build()
    meta = {**meta, "identity": fingerprint(arrays)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{digest}.", suffix=".npz", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{**arrays, **{f"meta_{k}": np.array(v) for k, v in meta.items()}})
        os.replace(tmp, path)
    except OSError:
        pass
    return arrays, meta


def identified(cfg, data: Dataset):
    """``cfg`` (a RunConfig) with the identity of ``data`` recorded, so its run id names the data too.

    A config that already records an identity is returned as it is if ``data`` has that identity, else
    refused: it was planned on other data (the files changed, or another folder was given).
    """
    import dataclasses

    if cfg.data.data_id == data.identity:
        return cfg
    if cfg.data.data_id:
        raise DataError(
            f"{data.source}: holds the data {data.identity}, but this run was planned on "
            f"{cfg.data.data_id}; expected the same data (or a new run)"
        )
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_id=data.identity))


_PREPARED: dict[tuple, Dataset] = {}


def prepared(data: Dataset, pad: int = 0, normalize: bool = False) -> Dataset:
    """``data`` as a run's network sees it: ``pad`` zero pixels added around each image, then, if
    ``normalize``, every pixel standardised by the training images' mean and standard deviation
    (both over every pixel after padding: 0.1000 and 0.2752 for MNIST at 32x32, the constants of
    Hsu et al.'s loader). Built once per process and setting; ``data`` itself is left untouched."""
    if not pad and not normalize:
        return data
    key = (id(data), pad, normalize)
    if key not in _PREPARED:
        import dataclasses

        import torch.nn.functional as F

        x_train, x_test = (F.pad(x, (pad,) * 4) if pad else x for x in (data.x_train, data.x_test))
        blank = 0.0
        if normalize:
            mean, std = x_train.double().mean(), x_train.double().std()
            x_train, x_test = (((x - mean) / std).float() for x in (x_train, x_test))
            blank = float(-mean / std)
        _PREPARED[key] = dataclasses.replace(data, x_train=x_train, x_test=x_test, blank=blank)
    return _PREPARED[key]


def _load_from(name: str, directory: Path) -> Dataset:
    found = _scan(directory)
    _check_usable(directory, found)
    return _load_idx_dir(name, str(directory), _file_key(found))


@functools.lru_cache(maxsize=1)
def _load_digits() -> Dataset:
    from importlib.metadata import version

    a, meta = decoded(("digits", version("scikit-learn"), DIGITS_TEST_FRACTION), _decode_digits)
    tr_x, tr_y, te_x, te_y = (
        torch.from_numpy(np.ascontiguousarray(a[k])) for k in ("x_train", "y_train", "x_test", "y_test")
    )
    return Dataset(
        "digits", tr_x, tr_y, te_x, te_y, N_CLASSES, "scikit-learn load_digits", meta["note"], meta["identity"]
    )


def _decode_digits() -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=0)
    note = (
        f"scikit-learn's {len(y):,} digits split into {len(y_tr):,} train / {len(y_te):,} test, "
        "stratified by class (train_test_split, random_state=0)"
    )
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}, {"note": note}


def cache_dir() -> Path:
    """Where downloads go: ``$BLACKOUT_DATA_CACHE``, else the per-user cache (XDG on Linux)."""
    env = os.environ.get("BLACKOUT_DATA_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("blackout")) / "data"


_cache_root = cache_dir


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    cache_dir: Path | None = None,
    mirrors: list[str] | None = None,
    debian_dir: Path = Path("/usr/share/datasets/fashion-mnist"),
) -> Dataset:
    """Load ``name`` ("digits", "mnist" or "fashion-mnist").

    digits ships with scikit-learn and ignores the path arguments. For the IDX datasets, with
    ``data_dir`` only that directory (or its ``<name>/`` subfolder) is used, so a wrong
    path is an error rather than a silent download. Otherwise: ``<cache_dir>/<name>/``, then
    (fashion-mnist) ``debian_dir``, then a download into the cache.
    """
    if name not in NAMES:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(NAMES)}")
    if name == "digits":
        return _load_digits()

    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: data directory does not exist; expected a directory holding {name} IDX files")
        sub = root / name
        directory = sub if _scan(sub) else root
        return _load_from(name, directory)

    cache = (Path(cache_dir) if cache_dir is not None else _cache_root()) / name
    looked = [cache]
    if set(_scan(cache)) == set(ROLES):
        return _load_from(name, cache)
    if name == "fashion-mnist":
        looked.append(Path(debian_dir))
        if set(_scan(Path(debian_dir))) == set(ROLES):
            return _load_from(name, Path(debian_dir))
    try:
        download(name, cache, mirrors)
    except DataError as exc:
        raise DataError(f"{exc} (no local copy in {' or '.join(str(p) for p in looked)})") from exc
    return _load_from(name, cache)


# --------------------------------------------------------------------------- download


def _mirror_list(name: str, mirrors: list[str] | None) -> list[str]:
    """``mirrors`` if given, else ``$BLACKOUT_MIRRORS`` (comma-separated, ``{name}`` expands), else the defaults."""
    if mirrors is None:
        env = os.environ.get("BLACKOUT_MIRRORS", "").strip()
        if env:
            mirrors = [m.strip().replace("{name}", name) for m in env.split(",") if m.strip()]
        else:
            mirrors = MIRRORS[name]
    if not mirrors:
        raise DataError(f"{name}: no download mirrors configured; expected at least one base URL")
    return list(mirrors)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fetch_one(url: str, dest_dir: Path, fname: str, expected_md5: str, timeout: float) -> tuple[str | None, bool]:
    """Download ``url`` to ``dest_dir/fname`` atomically.

    Returns (None, False) on success, else (why not, whether the server itself was unreachable).
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=dest_dir)
    except OSError as exc:
        return f"cannot create a temporary file in {dest_dir} ({exc.strerror or exc})", False
    try:
        h = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                out.write(chunk)
                h.update(chunk)
        got = h.hexdigest()
        if got != expected_md5:
            return f"MD5 {got} does not match the expected {expected_md5}", False
        os.replace(tmp, dest_dir / fname)
        return None, False
    except urllib.error.HTTPError as exc:
        return _describe(exc, timeout), False
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        return _describe(exc, timeout), True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def download(
    name: str, dest_dir: str | Path, mirrors: list[str] | None = None, *, timeout: float = DOWNLOAD_TIMEOUT
) -> None:
    """Fetch the four gzipped IDX files of ``name`` into ``dest_dir``, each verified by MD5.

    Files already present with the right checksum are kept. Each file is tried on every mirror
    in turn; it only appears under its final name once its checksum matched. A mirror that could
    not be reached is tried last for the remaining files, so a dead one costs one timeout, not four.
    """
    if name not in CHECKSUMS:
        raise DataError(f"unknown downloadable dataset {name!r}; expected one of {', '.join(CHECKSUMS)}")
    bases = _mirror_list(name, mirrors)
    dest = Path(dest_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{dest}: cannot create the download directory ({exc.strerror or exc})") from exc
    unreachable: set[str] = set()
    for stem in STEMS.values():
        fname = f"{stem}.gz"
        expected = CHECKSUMS[name][fname]
        target = dest / fname
        if target.is_file() and _md5(target) == expected:
            continue
        failures = []
        for base in [b for b in bases if b not in unreachable] + [b for b in bases if b in unreachable]:
            url = base.rstrip("/") + "/" + fname
            why, down = _fetch_one(url, dest, fname, expected, timeout)
            if why is None:
                break
            failures.append(f"{url}: {why}")
            if down:
                unreachable.add(base)
        else:
            raise DataError(f"{target}: could not download {fname} from any mirror ({'; '.join(failures)})")

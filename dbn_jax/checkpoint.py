"""Saving and loading trained DBNs and resumable training state — no pickle anywhere.

Model format (``<run output dir>/model/``, logged to MLflow under ``model/``)::

    model.json        {"format": "dbn-complex-networks/model", "version": 1,
                       "layers": [{"file": "layer_1.npz", "n_visible": 784, "n_hidden": 500}, ...], ...}
    layer_<l>.npz     arrays w (n_visible, n_hidden), b_vis (n_visible,), b_hid (n_hidden,), float32

Resumable state (``<run output dir>/checkpoint/state.npz``, rewritten atomically after every epoch): one ``.npz``
holding ``meta`` (UTF-8 JSON as uint8: layer, epoch, fingerprint of the training config), the trained layers
below (``done_<l>_{w,b_vis,b_hid}``) and the flattened leaves of the current layer's state (params, optimizer
state, PCD chains) as ``leaf_<i>``. Every file is written to a temporary name in the same folder and moved into
place with ``os.replace``, so a kill at any moment leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dbn_jax.rbm import RBMParams

MODEL_FORMAT = "dbn-complex-networks/model"
STATE_FORMAT = "dbn-complex-networks/train-state"
VERSION = 1


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_model(path: str | Path, layers: Sequence[RBMParams], meta: dict[str, Any] | None = None) -> Path:
    """Save a trained DBN to the folder ``path`` (``model.json`` is written last).

    Args:
        path: the model folder, e.g. ``<run output dir>/model``.
        layers: the RBMs from the bottom up.
        meta: extra JSON-serialisable information (config, seed, metrics) stored in ``model.json``.

    Returns:
        The folder.
    """
    path = Path(path)
    entries = []
    for i, p in enumerate(layers, start=1):
        name = f"layer_{i}.npz"
        arrays = {k: np.asarray(v, dtype=np.float32) for k, v in p._asdict().items()}
        atomic_write_bytes(path / name, _npz_bytes(arrays))
        entries.append({"file": name, "n_visible": int(p.w.shape[0]), "n_hidden": int(p.w.shape[1])})
    doc = {"format": MODEL_FORMAT, "version": VERSION, "layers": entries, "meta": meta or {}}
    atomic_write_bytes(path / "model.json", json.dumps(doc, indent=2, default=str).encode())
    return path


def load_dbn(path: str | Path) -> list[RBMParams]:
    """Load a DBN saved by :func:`save_model`.

    Args:
        path: the model folder, or a run output dir holding ``model/``, or an MLflow artifact download of it.

    Returns:
        The layers from the bottom up, each an :class:`RBMParams` (numpy float32 ``.w``, ``.b_vis``, ``.b_hid``).
    """
    path = Path(path)
    if not (path / "model.json").exists() and (path / "model" / "model.json").exists():
        path = path / "model"
    index = path / "model.json"
    if not index.exists():
        raise FileNotFoundError(f"{index}: no model.json (not a dbn-complex-networks model folder)")
    doc = json.loads(index.read_text())
    if doc.get("format") != MODEL_FORMAT:
        raise ValueError(f"{index}: format {doc.get('format')!r}, expected {MODEL_FORMAT!r}")
    layers = []
    for entry in doc["layers"]:
        with np.load(path / entry["file"], allow_pickle=False) as z:
            p = RBMParams(w=z["w"], b_vis=z["b_vis"], b_hid=z["b_hid"])
        if p.w.shape != (entry["n_visible"], entry["n_hidden"]):
            raise ValueError(f"{path / entry['file']}: w has shape {p.w.shape}, index says "
                             f"({entry['n_visible']}, {entry['n_hidden']})")  # fmt: skip
        layers.append(p)
    return layers


def save_state(
    path: str | Path,
    *,
    layer: int,
    epoch: int,
    done: Sequence[RBMParams],
    leaves: Sequence[Any],
    meta: dict[str, Any],
) -> None:
    """Atomically write the resumable training state to ``path`` (a ``.npz`` file).

    Args:
        path: the file, e.g. ``<run output dir>/checkpoint/state.npz``.
        layer: the layer being trained (1-based).
        epoch: the last finished epoch of that layer.
        done: trained layers below ``layer``.
        leaves: ``jax.tree_util.tree_leaves`` of the current layer's state.
        meta: JSON-serialisable information checked on resume (config fingerprint, seed).
    """
    head = {"format": STATE_FORMAT, "version": VERSION, "layer": layer, "epoch": epoch,
            "n_done": len(done), "n_leaves": len(leaves), **meta}  # fmt: skip
    arrays: dict[str, np.ndarray] = {"meta": np.frombuffer(json.dumps(head).encode(), np.uint8)}
    for i, p in enumerate(done, start=1):
        for k, v in p._asdict().items():
            arrays[f"done_{i}_{k}"] = np.asarray(v)
    for i, leaf in enumerate(leaves):
        arrays[f"leaf_{i}"] = np.asarray(leaf)
    atomic_write_bytes(path, _npz_bytes(arrays))


def load_state(path: str | Path) -> tuple[dict[str, Any], list[RBMParams], list[np.ndarray]]:
    """Read a file written by :func:`save_state`.

    Returns:
        ``(meta, done, leaves)``; the caller rebuilds the current layer's pytree from ``leaves``.
    """
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"{path}: not a dbn-complex-networks training state")
        done = [
            RBMParams(z[f"done_{i}_w"], z[f"done_{i}_b_vis"], z[f"done_{i}_b_hid"])
            for i in range(1, meta["n_done"] + 1)
        ]
        leaves = [z[f"leaf_{i}"] for i in range(meta["n_leaves"])]
    return meta, done, leaves

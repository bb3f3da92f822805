"""A trained network as an MLflow ``pyfunc`` model, from code: MLflow stores this file with the model and runs it
at load time; the weights are the run's own ``.npz`` files (``dbn_jax.checkpoint.save_model``), read with
``allow_pickle=False``. Nothing is pickled, and loading needs only MLflow and numpy.

    model = mlflow.pyfunc.load_model("runs:/<run id>/network")
    model.predict(images)                        # (n, 784) float in [0, 1] -> the top layer's probabilities
    model.predict(images, params={"layer": 1})   # -> h1's

A DBN (``kind: dbn``) returns the hidden-unit probabilities ``sigmoid(x W + b_hid)`` of layer ``params["layer"]``
(1-based, default the top), the upward pass ``dbn_jax.train.propagate`` makes; the MLP baseline (``kind: mlp``)
returns class probabilities (softmax of the output layer) by default, or a hidden layer's activations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class NetworkModel(PythonModel):
    """The layers of ``artifacts["weights"]`` (a model folder: ``model.json`` + ``layer_<i>.npz``)."""

    def load_context(self, context: Any) -> None:
        folder = Path(context.artifacts["weights"])
        doc = json.loads((folder / "model.json").read_text())
        self.kind = doc.get("meta", {}).get("kind", "dbn")
        self.layers = []
        for entry in doc["layers"]:
            with np.load(folder / entry["file"], allow_pickle=False) as z:
                self.layers.append((z["w"].astype(np.float32), z["b_hid"].astype(np.float32)))
        # The MLP's last layer is its output layer; every other layer is a hidden layer.
        self.n_hidden = len(self.layers) - (1 if self.kind == "mlp" else 0)

    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        if isinstance(model_input, dict) and len(model_input) == 1:  # a named tensor
            model_input = next(iter(model_input.values()))
        if hasattr(model_input, "to_numpy"):  # a DataFrame, one column per pixel
            model_input = model_input.to_numpy()
        x = np.asarray(model_input, dtype=np.float32)
        n_in = self.layers[0][0].shape[0]
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(f"input of shape {x.shape}; expected (n, {n_in}) floats in [0, 1]")
        top = self.n_hidden + (1 if self.kind == "mlp" else 0)
        layer = (params or {}).get("layer")
        layer = top if layer is None else int(layer)
        if not 1 <= layer <= top:
            raise ValueError(f"params layer={layer}; allowed: 1..{top} (default {top}, the top)")
        for i, (w, b) in enumerate(self.layers[:layer], start=1):
            z = x @ w + b
            if i > self.n_hidden:  # the MLP's output layer
                z = z - z.max(axis=1, keepdims=True)
                e = np.exp(z)
                return e / e.sum(axis=1, keepdims=True)
            x = 1.0 / (1.0 + np.exp(-z))
        return x


set_model(NetworkModel())

"""The model-quality callback of ``analysis=beyond``: it needs the RBMs themselves, not only their weights, so it
lives here, beside the app, and reads them from ``TrainEnd.model``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jax

from analysis import figures as F
from analysis.callbacks import AnalysisResult
from analysis.events import TrainEnd
from dbn_jax.quality import ais_quality, top_rbm_samples


@dataclass
class ModelQualityCallback:
    """At the end of training of a DBN: the AIS estimate of the layer-1 RBM's log partition function and test
    log-likelihood (``quality/h1/{log_z,log_z_std_err,test_log_likelihood}``; ``ais.enabled``, ``ais.n_chains``,
    ``ais.n_betas``) and ``figures/top_rbm_samples.png``: ``samples.n`` fantasies of the top RBM after
    ``samples.gibbs_steps`` Gibbs steps, propagated down to the pixels (``samples.n: 0`` = none). Seeded from the
    run's seed. The app leaves it out for ``model.kind=mlp``, whose layers are no RBMs (``needs_rbm``)."""

    ais: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)
    every_n_epochs: int = 0
    wants_context: ClassVar[bool] = True
    needs_rbm: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.ais = {"enabled": True, "n_chains": 100, "n_betas": 2000, **dict(self.ais)}
        self.samples = {"n": 64, "gibbs_steps": 1000, **dict(self.samples)}
        for name, value, ok, allowed in (
            ("ais.n_chains", self.ais["n_chains"], self.ais["n_chains"] >= 1, "an integer >= 1"),
            ("ais.n_betas", self.ais["n_betas"], self.ais["n_betas"] >= 2, "an integer >= 2"),
            ("samples.n", self.samples["n"], self.samples["n"] >= 0, "an integer >= 0 (0 = no samples figure)"),
            (
                "samples.gibbs_steps",
                self.samples["gibbs_steps"],
                self.samples["gibbs_steps"] >= 1,
                "an integer >= 1",
            ),
        ):
            if not ok:
                raise ValueError(f"invalid {name}: {value!r}; allowed: {allowed}")

    def __call__(self, event: Any, context: Any) -> AnalysisResult | None:
        if not isinstance(event, TrainEnd) or event.model is None:
            return None
        out = AnalysisResult()
        if self.ais["enabled"] and context.dataset is not None:
            x_train, x_test = context.dataset.x_train, context.dataset.x_test
            out.metrics.update(ais_quality(event.model[0], x_train, x_test, context.seed,
                                           int(self.ais["n_chains"]), int(self.ais["n_betas"])))  # fmt: skip
        n, steps = int(self.samples["n"]), int(self.samples["gibbs_steps"])
        if n > 0:
            images = top_rbm_samples(jax.random.key(context.seed), event.model, n, steps)
            side = round(math.sqrt(images.shape[1]))
            if side * side == images.shape[1]:
                out.figures["figures/top_rbm_samples.png"] = F.plot_samples(
                    images.reshape(-1, side, side),
                    f"samples of the top RBM ({steps} Gibbs steps), propagated down",
                )
        out.metrics = {k: float(v) for k, v in out.metrics.items() if math.isfinite(float(v))}
        return out

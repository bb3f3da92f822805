"""Deep belief networks in JAX: stacked Bernoulli RBMs trained greedily with contrastive divergence."""

from dbn_jax.checkpoint import load_dbn
from dbn_jax.rbm import RBMParams

__all__ = ["RBMParams", "load_dbn"]
__version__ = "0.1.0"

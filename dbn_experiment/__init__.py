"""The composition root: the Hydra app ``dbn-experiment``, MLflow tracking, sweeps, ``dbn-compare`` and the report.

The only package that imports both :mod:`dbn_jax` (the model) and :mod:`analysis` (network science on arrays),
and the only one that imports MLflow or Hydra (contracts in ``pyproject.toml``, checked by ``lint-imports``).
"""

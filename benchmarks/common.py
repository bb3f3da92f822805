"""Pieces the benchmark scripts share (``benchmarks/`` is on ``sys.path`` when a script runs)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import jax


def machine_info() -> dict[str, Any]:
    """Platform, processor, cores, JAX backend and devices: the ``machine`` entry of every result file."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def time_epochs(epoch: Callable[..., Any], state: Any, x: jax.Array, root: jax.Array, repeats: int):
    """A warm-up call of a jitted ``epoch(state, key, x)`` (compilation + one epoch), then ``repeats`` timed calls
    with keys ``fold_in(root, 1..repeats)``, each from the same ``state``.

    Returns:
        ``(warm-up output, warm-up seconds, list of timed seconds)``.
    """
    t = time.perf_counter()
    first = jax.block_until_ready(epoch(state, jax.random.fold_in(root, 0), x))
    compile_and_first = time.perf_counter() - t
    times = []
    for r in range(1, repeats + 1):
        t = time.perf_counter()
        jax.block_until_ready(epoch(state, jax.random.fold_in(root, r), x))
        times.append(time.perf_counter() - t)
    return first, compile_and_first, times


def write_results(path: Any, report: dict, table: str) -> None:
    """Write a benchmark's JSON to ``path`` (folders created) and print its table and where it went."""
    import json
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(table)
    print(f"wrote {path}")

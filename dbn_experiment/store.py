"""The MLflow store calls shared by the tracker, the sweep callback and ``dbn-compare``: the default store, a
reachability check that fails in seconds, retries of transient errors, credential masking, batches within
MLflow's limits."""

from __future__ import annotations

import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH, MAX_METRICS_PER_BATCH = 100, 100, 1000
MAX_PARAM_VALUE, MAX_TAG_VALUE = 6000, 5000
_TEXT_SUFFIXES = {".yaml", ".yml", ".log", ".txt", ".json", ".csv", ".md"}
_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]+):[^@\s'\"]+@")


def default_tracking_uri(launch_dir: str | os.PathLike) -> tuple[str, str]:
    """``(uri, artifact location)`` of the default store: ``<launch dir>/mlflow.db``, ``<launch dir>/mlartifacts``
    (so ``mlflow ui`` started in the launch dir shows everything)."""
    root = Path(launch_dir).resolve()
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlartifacts").as_uri()


def redact(text: str) -> str:
    """Mask the password of every ``scheme://user:password@host`` in ``text``: ``scheme://user:***@host``."""
    return _CREDENTIALS.sub(r"\g<head>:***@", text)


class TrackingUnavailable(RuntimeError):
    """The tracking server cannot be reached; ``str(err)`` is one line naming the URI."""


def check_reachable(uri: str, attempts: int = 3, timeout: float = 4.0, pause: float = 2.0) -> None:
    """For an ``http(s)://`` URI: raise :class:`TrackingUnavailable` unless the server answers within ``attempts``
    tries (about 16 s at worst; MLflow's own client would retry for minutes). Other URIs pass."""
    if not uri.startswith(("http://", "https://")):
        return
    reason = ""
    for i in range(attempts):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
                return
        except urllib.error.HTTPError:  # it answered: reachable (a proxy or a server without /health)
            return
        except (urllib.error.URLError, OSError) as err:
            reason = str(getattr(err, "reason", err))
        if i < attempts - 1:
            time.sleep(pause)
    raise TrackingUnavailable(
        f"tracking.uri={redact(uri)} is not reachable ({reason}; {attempts} tries): start the tracking server, "
        "fix tracking.uri (or MLFLOW_TRACKING_URI), or use tracking.uri=null for a local SQLite store"
    )


def retry(fn: Callable[[], T], *, attempts: int = 12, base_delay: float = 0.1) -> T:
    """Call ``fn``; on a transient store error (``database is locked``, a dropped connection, HTTP 429/502/503)
    wait ``base_delay * 2**i`` seconds (at most 5) and try again."""
    transient = ("database is locked", "connection", "timed out", "temporarily", "503", "502", "429")
    for i in range(attempts):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - filtered below
            if i == attempts - 1 or not any(n in str(err).lower() for n in transient):
                raise
            delay = min(base_delay * 2**i, 5.0)
            log.warning("tracking store busy (%s); retrying in %.1f s", str(err).splitlines()[0], delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def redacted_bytes(src: str | Path) -> bytes:
    """A file's bytes; a text file (config, log) with the passwords of its URIs masked."""
    data = Path(src).read_bytes()
    if Path(src).suffix in _TEXT_SUFFIXES:
        try:
            return redact(data.decode()).encode()
        except UnicodeDecodeError:
            pass
    return data


def get_or_create_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    exp = retry(lambda: client.get_experiment_by_name(name))
    if exp is not None:
        return exp.experiment_id
    try:
        return retry(lambda: client.create_experiment(name, artifact_location=artifact_location))
    except Exception:  # noqa: BLE001 - created at the same moment by another process
        exp = retry(lambda: client.get_experiment_by_name(name))
        if exp is None:
            raise
        return exp.experiment_id


def log_batch(client: Any, run_id: str, metrics: Iterable[tuple[str, float, int, int]] = (),
              params: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """Write metrics ``(key, value, timestamp ms, step)``, params and tags in batches within MLflow's limits."""
    from mlflow.entities import Metric, Param, RunTag

    def chunks(items: list[Any], size: int) -> list[list[Any]]:
        return [items[i : i + size] for i in range(0, len(items), size)]

    batches = [{"metrics": c} for c in chunks([Metric(*m) for m in metrics], MAX_METRICS_PER_BATCH)]
    batches += [{"params": c} for c in chunks([Param(*p) for p in (params or {}).items()], MAX_PARAMS_PER_BATCH)]
    batches += [{"tags": c} for c in chunks([RunTag(*t) for t in (tags or {}).items()], MAX_TAGS_PER_BATCH)]
    for batch in batches:
        retry(lambda b=batch: client.log_batch(run_id, **b))


def create_run(client: Any, experiment_id: str, name: str, params: Mapping[str, Any], tags: Mapping[str, Any],
               parent: str | None = None) -> str:  # fmt: skip
    """Create a run with its params and tags, credentials masked; return its id."""
    parent_tag = {"mlflow.parentRunId": parent} if parent else None
    run_id = retry(lambda: client.create_run(experiment_id, run_name=redact(name), tags=parent_tag)).info.run_id
    texts = {k: redact(str(v)) for k, v in params.items()}
    truncated = [k for k, text in texts.items() if len(text) > MAX_PARAM_VALUE]
    texts.update({k: texts[k][: MAX_PARAM_VALUE - 3] + "..." for k in truncated})
    tags = {**tags, "params_truncated": ",".join(truncated)} if truncated else tags
    log_batch(client, run_id, params=texts, tags={k: redact(str(v))[:MAX_TAG_VALUE] for k, v in tags.items()})
    return run_id


def close_run(client: Any, run_id: str, status: str, message: str | None = None) -> None:
    if message:
        retry(lambda: client.set_tag(run_id, "error", redact(message)[:MAX_TAG_VALUE]))
    retry(lambda: client.set_terminated(run_id, status=status))

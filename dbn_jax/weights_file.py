"""A network trained elsewhere, read from a file: an ordered stack of dense weight matrices, nothing unpickled.

Formats, told apart by content (the first bytes), the file's extension being the promise the content must keep:

- ``.safetensors``: read with the ``safetensors`` library (float16, bfloat16, float32, float64 tensors);
- ``.npz``: ``numpy.load(allow_pickle=False)`` (an object array, which would be a pickle, is refused);
- ``.pt`` / ``.pth`` / ``.bin``: a PyTorch state dict, ``torch.load(path, map_location="cpu", weights_only=True)``
  (PyTorch's own restricted unpickler: tensors and containers only), when ``torch`` is installed; nested dicts
  (``{"state_dict": {...}}``) are flattened with dotted names.

A pickle (or a PyTorch zip, which holds one) under a ``.safetensors`` or ``.npz`` name is refused: unpickling can
run arbitrary code. Every problem is a :class:`WeightFileError` whose message is one line naming the file.

    >>> stack = read_weight_stack("mlp.safetensors", ["0.weight", "2.weight"], transpose=True)
    >>> [w.shape for w in stack.weights]     # (n_in, n_out), bottom first
    [(784, 256), (256, 64)]
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMATS", "WeightFileError", "WeightStack", "load_weight_stack", "read_weight_stack"]

FORMATS = {".safetensors": "safetensors", ".npz": "npz", ".pt": "torch", ".pth": "torch", ".bin": "torch"}
ALLOWED = ".safetensors, .npz, .pt/.pth/.bin (a PyTorch state dict)"
_SUFFIX = {"safetensors": ".safetensors", "npz": ".npz", "torch": ".pt", "pickle": ".pt"}
_WHAT = {
    "safetensors": "a safetensors file",
    "npz": "a NumPy .npz archive",
    "torch": "a PyTorch zip file (a pickle inside)",
    "pickle": "a pickle",
    "npy": "a single NumPy .npy array",
    "zip": "a zip archive that is neither .npz nor PyTorch",
    "empty": "empty",
    "unknown": "of unknown content",
}
_FLOAT_DTYPES = "float16, bfloat16, float32, float64"
_ST_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64", "F8_E4M3": "float8_e4m3",
              "F8_E5M2": "float8_e5m2", "I8": "int8", "U8": "uint8", "I16": "int16", "U16": "uint16",
              "I32": "int32", "U32": "uint32", "I64": "int64", "U64": "uint64", "BOOL": "bool"}  # fmt: skip
_ST_FLOATS = ("F16", "BF16", "F32", "F64")


class WeightFileError(ValueError):
    """A weight file that cannot be read as a stack of dense layers; ``str(err)`` is one line naming the file."""


@dataclass(frozen=True)
class WeightStack:
    """What :func:`read_weight_stack` read.

    Attributes:
        path: the file.
        format: ``"safetensors"``, ``"npz"`` or ``"torch"``.
        names: the tensors taken, bottom first.
        weights: the matrices, ``(n_in, n_out)`` float64 each (transposed if asked), bottom first.
        chosen: True when ``names`` were chosen by the reader (``layers=None``: every 2-D floating-point tensor in
            natural name order), False when the caller named them.
        sha256: hex digest of the file.
    """

    path: Path
    format: str
    names: tuple[str, ...]
    weights: tuple[np.ndarray, ...]
    chosen: bool
    sha256: str

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer sizes, input first: ``(n_0, n_1, ..., n_L)``."""
        return (self.weights[0].shape[0], *(w.shape[1] for w in self.weights))


@dataclass(frozen=True)
class _Tensor:
    shape: tuple[int, ...]
    dtype: str
    floating: bool
    load: Callable[[], np.ndarray]  # float64


def natural_key(name: str) -> tuple:
    """Sort key putting ``"10.weight"`` after ``"2.weight"`` (digit runs compare as numbers)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name))


def _sniff(path: Path) -> str:
    """The content's kind from its first bytes (see ``_WHAT``)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
        # safetensors: an 8-byte little-endian header length (its first byte may be 0x80, as a pickle's), then JSON
        n = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
        if head[8:9] == b"{" and 8 + n <= size:
            f.seek(8)
            try:
                if isinstance(json.loads(f.read(n)), dict):
                    return "safetensors"
            except ValueError:
                pass
    if not head:
        return "empty"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return "zip"
        if all(n.endswith(".npy") for n in names):
            return "npz"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    return "unknown"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _safetensors_index(path: Path) -> dict[str, _Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            meta = {k: (tuple(f.get_slice(k).get_shape()), str(f.get_slice(k).get_dtype())) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - the library's own error types vary across versions
        raise WeightFileError(f"{path}: not a valid safetensors file ({_first_line(err)})") from None

    def loader(name: str, dtype: str) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            if dtype == "BF16":  # numpy has no bfloat16: its bits are the top half of a float32's
                return _bf16_tensor(path, name)
            with safe_open(str(path), framework="np") as f:
                return np.asarray(f.get_tensor(name), dtype=np.float64)

        return load

    return {k: _Tensor(s, _ST_DTYPES.get(d, d), d in _ST_FLOATS, loader(k, d)) for k, (s, d) in meta.items()}


def _bf16_tensor(path: Path, name: str) -> np.ndarray:
    """A BF16 tensor of a safetensors file (8-byte header length, JSON header, then the raw data)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        entry = json.loads(f.read(n))[name]
        start, end = entry["data_offsets"]
        f.seek(8 + n + start)
        raw = np.frombuffer(f.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"]).astype(np.float64)


def _npz_index(path: Path) -> dict[str, _Tensor]:
    out = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                try:
                    a = z[k]
                except ValueError as err:
                    if "allow_pickle" in str(err):
                        raise WeightFileError(
                            f"{path}: array {k!r} is an object array (a pickle): refused; allowed: numeric arrays"
                        ) from None
                    raise
                floating = np.issubdtype(a.dtype, np.floating)
                out[k] = _Tensor(a.shape, str(a.dtype), floating, lambda a=a: np.asarray(a, dtype=np.float64))
    except WeightFileError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged archive: zipfile, numpy format or OS errors
        raise WeightFileError(f"{path}: not a valid .npz archive ({_first_line(err)})") from None
    return out


def _flatten(obj: Mapping, prefix: str, out: dict[str, Any]) -> None:
    for k, v in obj.items():
        if isinstance(v, Mapping):
            _flatten(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = v


def _torch_index(path: Path) -> dict[str, _Tensor]:
    try:
        import torch
    except ImportError:
        raise WeightFileError(
            f"{path}: reading a PyTorch file needs torch, which is not installed (pip install torch); or save the "
            "tensors with safetensors (safetensors.torch.save_file) or numpy.savez"
        ) from None
    try:
        with warnings.catch_warnings():  # e.g. about a pickle protocol: the error below says what matters
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch's errors for a damaged file vary
        if type(err).__name__ == "UnpicklingError":  # the weights-only unpickler met something not a tensor
            raise WeightFileError(
                f"{path}: not a plain state dict: torch.load(weights_only=True) refused it (it pickles objects "
                "other than tensors, e.g. a whole nn.Module); save model.state_dict() instead"
            ) from None
        raise WeightFileError(f"{path}: torch.load could not read it ({_first_line(err)})") from None
    if not isinstance(obj, Mapping):
        raise WeightFileError(
            f"{path}: holds a {type(obj).__name__}, not a state dict; allowed: a dict of tensors "
            "(torch.save(model.state_dict(), path))"
        )
    flat: dict[str, Any] = {}
    _flatten(obj, "", flat)
    out = {}
    for k, t in flat.items():
        if isinstance(t, torch.Tensor):
            load = (lambda t=t: t.detach().to(torch.float64).numpy()) if t.is_floating_point() else None
            out[k] = _Tensor(tuple(t.shape), str(t.dtype).removeprefix("torch."), t.is_floating_point(), load)
    return out


def _listing(index: Mapping[str, _Tensor], limit: int = 12) -> str:
    names = sorted((k for k, t in index.items() if len(t.shape) == 2), key=natural_key)
    if not names:
        return "none"
    shown = ", ".join(f"{k} {index[k].shape}" for k in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _check_path(path: Path) -> str:
    """The promised format of ``path``, after checking that it is a file whose content keeps the promise."""
    if not path.exists():
        raise WeightFileError(f"{path}: no such file")
    if not path.is_file():
        raise WeightFileError(f"{path}: not a file; allowed: a weight file ({ALLOWED})")
    content = _sniff(path)
    promised = FORMATS.get(path.suffix.lower())
    if promised is None:
        hint = ""
        if content in _SUFFIX:
            hint = f" (its content is {_WHAT[content]}: name it {_SUFFIX[content]})"
        raise WeightFileError(f"{path}: unknown format '{path.suffix}'{hint}; allowed: {ALLOWED}")
    if promised == "torch":
        if content not in ("torch", "pickle"):
            hint = f"; name it {_SUFFIX[content]}" if content in _SUFFIX else ""
            raise WeightFileError(f"{path}: is {_WHAT[content]}, not a PyTorch file{hint}")
        return promised
    if content in ("torch", "pickle"):
        raise WeightFileError(
            f"{path}: is {_WHAT[content]}, not {_WHAT[promised]}: refused (unpickling can run arbitrary code); "
            "save the tensors with safetensors (safetensors.torch.save_file) or numpy.savez, or name a PyTorch "
            "state dict .pt to read it with torch.load(weights_only=True)"
        )
    if content != promised:
        hint = f"; name it {_SUFFIX[content]}" if content in _SUFFIX else ""
        raise WeightFileError(f"{path}: is {_WHAT[content]}, not {_WHAT[promised]}{hint}")
    return promised


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _select(path: Path, index: Mapping[str, _Tensor], layers: Sequence[str] | None) -> list[str]:
    if layers is None:
        names = sorted((k for k, t in index.items() if len(t.shape) == 2 and t.floating), key=natural_key)
        if not names:
            kinds = ", ".join(f"{k} {t.shape} {t.dtype}" for k, t in list(index.items())[:12]) or "none"
            raise WeightFileError(f"{path}: no 2-D floating-point tensors (dense layers); its tensors: {kinds}")
        return names
    names = [str(x) for x in layers]
    if not names:
        raise WeightFileError(f"{path}: an empty list of layers; allowed: None (every 2-D tensor) or names")
    for name in names:
        t = index.get(name)
        if t is None:
            raise WeightFileError(f"layer {name!r} not in {path}; its 2-D tensors: {_listing(index)}")
        if len(t.shape) != 2:
            raise WeightFileError(
                f"layer {name!r} of {path} has shape {t.shape}; allowed: a 2-D (dense) matrix; its 2-D tensors: "
                f"{_listing(index)}"
            )
        if not t.floating:
            raise WeightFileError(f"layer {name!r} of {path} is {t.dtype}; allowed: {_FLOAT_DTYPES}")
    return names


def _check_chain(path: Path, names: Sequence[str], mats: Sequence[np.ndarray], transpose: bool) -> None:
    for i in range(1, len(mats)):
        a, b = mats[i - 1], mats[i]
        if a.shape[1] == b.shape[0]:
            continue
        stored = [m.T.shape if transpose else m.shape for m in (a, b)]
        flipped = [m.T for m in mats]
        other = all(flipped[j - 1].shape[1] == flipped[j].shape[0] for j in range(1, len(mats)))
        read = "(out, in), transposed" if transpose else "(n_in, n_out)"
        hint = ""
        if other and not transpose:
            hint = "; they chain as (out, in) matrices (torch.nn.Linear.weight): set transpose=true"
        elif other:
            hint = "; they chain as (n_in, n_out) matrices: set transpose=false"
        raise WeightFileError(
            f"{path}: layers {names[i - 1]!r} {stored[0]} and {names[i]!r} {stored[1]} do not chain read as "
            f"{read} ({a.shape[1]} outputs, then {b.shape[0]} inputs){hint}"
        )


def read_weight_stack(
    path: str | Path, layers: Sequence[str] | None = None, transpose: bool = False
) -> WeightStack:
    """Read an ordered stack of dense layers from a weight file (see the module docstring for the formats).

    Args:
        path: the file.
        layers: the tensors to take, bottom first; ``None``: every 2-D floating-point tensor, in natural order of
            their names (``"2.weight"`` before ``"10.weight"``). 1-D tensors (biases) and others are ignored.
        transpose: the file stores ``(out, in)`` matrices (PyTorch's ``Linear.weight``): transpose each.

    Returns:
        The :class:`WeightStack` (float64 ``(n_in, n_out)`` matrices, bottom first, names, format, digest).

    Raises:
        WeightFileError: a missing file, an unknown format, a pickle where safetensors or .npz was promised, a
            named layer absent, not 2-D or not floating point, shapes that do not chain, NaN or Inf weights.
    """
    path = Path(path)
    fmt = _check_path(path)
    index = {"safetensors": _safetensors_index, "npz": _npz_index, "torch": _torch_index}[fmt](path)
    names = _select(path, index, layers)
    mats = []
    for name in names:
        try:
            w = index[name].load()
        except WeightFileError:
            raise
        except Exception as err:  # noqa: BLE001 - e.g. an unsupported dtype in the library
            raise WeightFileError(
                f"layer {name!r} of {path} ({index[name].dtype}) could not be read ({_first_line(err)}); allowed: "
                f"{_FLOAT_DTYPES}"
            ) from None
        bad = int(np.size(w) - np.count_nonzero(np.isfinite(w)))
        if bad:
            raise WeightFileError(
                f"layer {name!r} of {path} holds {bad} NaN/Inf values (of {w.size}); allowed: finite weights"
            )
        if 0 in w.shape:
            raise WeightFileError(f"layer {name!r} of {path} is empty {w.shape}; allowed: a non-empty matrix")
        mats.append(np.ascontiguousarray(w.T if transpose else w))
    _check_chain(path, names, mats, transpose)
    return WeightStack(path, fmt, tuple(names), tuple(mats), layers is None, _sha256(path))


def load_weight_stack(
    path: str | Path, layers: Sequence[str] | None = None, transpose: bool = False
) -> tuple[np.ndarray, ...]:
    """The matrices of :func:`read_weight_stack`: float64, ``(n_in, n_out)`` each, bottom first."""
    return read_weight_stack(path, layers, transpose).weights

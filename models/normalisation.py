"""Input normalisation stated once: `--input-scale --mean --std`, or what a checkpoint carries, into the record.

A model's record says how a pixel p of band c becomes its input: `(p * input_scale - mean[c]) / std[c]`.
The architecture gives a default (YOLOv5: 1/255; each DeepLab family its own); a training checkpoint that
stores `input_scale` / `mean` / `std` (top level, or under `normalisation` / `normalization`) overrides
it, and the command-line flags override both. Every later artefact then carries the result.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from agrideploy.errors import AgrideployError

KEYS = ("input_scale", "mean", "std")


def parse_scale(text: str) -> float:
    """`--input-scale 0.0001` or `--input-scale 1/10000`."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise AgrideployError(f"--input-scale takes a number such as 0.0001 or 1/255, got {text!r}") from None
    if not value > 0:
        raise AgrideployError(f"--input-scale must be positive, got {text!r}")
    return value


def parse_bands(text: str, flag: str) -> List[float]:
    """`--mean 0.485,0.456,0.406,0.5`: one number per band."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AgrideployError(f"{flag} takes comma-separated numbers, one per band, got {text!r}") from None
    if not values:
        raise AgrideployError(f"{flag} takes comma-separated numbers, one per band")
    return values


def normalisation_args(args: Any) -> Dict[str, Any]:
    """load_model keyword arguments from the parsed --input-scale / --mean / --std (absent flags: None)."""
    scale, mean, std = (getattr(args, k, None) for k in ("input_scale", "mean", "std"))
    return {
        "input_scale": parse_scale(scale) if scale is not None else None,
        "mean": parse_bands(mean, "--mean") if mean is not None else None,
        "std": parse_bands(std, "--std") if std is not None else None,
    }


def from_checkpoint(obj: Any) -> Dict[str, Any]:
    """The normalisation keys a checkpoint mapping carries (possibly none)."""
    if not isinstance(obj, dict):
        return {}
    for nested in ("normalisation", "normalization"):
        if isinstance(obj.get(nested), dict):
            obj = obj[nested]
            break
    found = {k: obj[k] for k in KEYS if obj.get(k) is not None}
    try:
        if "input_scale" in found:
            found["input_scale"] = float(found["input_scale"])
        for key in ("mean", "std"):
            if key in found:
                found[key] = [float(v) for v in _as_list(found[key])]
    except (TypeError, ValueError):
        raise AgrideployError("the checkpoint's normalisation (input_scale / mean / std) is not numeric") from None
    return found


def _as_list(value: Any) -> Sequence[Any]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value if isinstance(value, (list, tuple)) else [value]


def check_bands(mean: Optional[Sequence[float]], std: Optional[Sequence[float]], channels: int, where: str = "") -> None:
    """One mean and one (non-zero) std per input band."""
    prefix = f"{where}: " if where else ""
    for name, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) != channels:
            raise AgrideployError(f"{prefix}--{name} has {len(values)} values but the model takes {channels} bands")
    if std is not None and min(abs(v) for v in std) == 0:
        raise AgrideployError(f"{prefix}--std must not hold a zero")


def apply(record, input_scale: Optional[float] = None, mean: Optional[Sequence[float]] = None,
          std: Optional[Sequence[float]] = None, where: str = "") -> None:
    """Set the given parts of the record's normalisation (in place), checked against its bands."""
    check_bands(mean, std, record.channels, where)
    prefix = f"{where}: " if where else ""
    if input_scale is not None:
        if not input_scale > 0:
            raise AgrideployError(f"{prefix}--input-scale must be positive, got {input_scale}")
        record.input_scale = float(input_scale)
    if mean is not None:
        record.mean = [float(v) for v in mean]
    if std is not None:
        record.std = [float(v) for v in std]

"""Types and sizes of a YOLOv5 model yaml checked before any layer is built.

The yaml is untrusted (a user's file, or the dict embedded in a checkpoint): `depth_multiple: 1e7`
hangs the build, `nc: 1e7` or `ch: 1e6` exhausts memory, `n: "3"` or `anchors: []` fails deep in
torch. Every field is checked here against its type and agrideploy.limits, naming the field; layer
sizes are measured on the meta device (no memory) before the real layer is allocated.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Tuple

from agrideploy import limits
from agrideploy.errors import AgrideployError

WHERE = "model yaml"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_model_yaml(d: Dict[str, Any]) -> None:
    """Refuse, in one line naming the field, a yaml whose values have the wrong type or pass a limit."""
    nc = d.get("nc")
    if not _is_int(nc) or nc < 1:
        raise AgrideployError(f"{WHERE}: nc must be a positive integer, got {nc!r}")
    limits.check("max_classes", nc, f"{WHERE}: nc")
    for key in ("depth_multiple", "width_multiple"):
        value = d.get(key, 1.0)
        if not _is_number(value) or value <= 0:
            raise AgrideployError(f"{WHERE}: {key} must be a positive number, got {value!r}")
        limits.check("max_multiple", value, f"{WHERE}: {key}")
    ch = d.get("ch", 3)
    if not _is_int(ch) or ch < 1:
        raise AgrideployError(f"{WHERE}: ch must be a positive integer, got {ch!r}")
    limits.check("max_bands", ch, f"{WHERE}: ch")
    if d.get("channel_multiple") is not None and (not _is_int(d["channel_multiple"]) or not 1 <= d["channel_multiple"] <= 64):
        raise AgrideployError(f"{WHERE}: channel_multiple must be an integer from 1 to 64, got {d['channel_multiple']!r}")
    check_anchors(d.get("anchors"))
    rows = [d.get("backbone"), d.get("head")]
    if not all(isinstance(r, list) for r in rows):
        raise AgrideployError(f"{WHERE}: backbone and head must be lists of [from, number, module, args]")
    limits.check("max_layers", len(rows[0]) + len(rows[1]), f"{WHERE}: layers")
    for i, row in enumerate(rows[0] + rows[1]):
        _check_row(i, row, d.get("depth_multiple", 1.0))


def check_anchors(anchors: Any) -> None:
    """Anchors: a count per level, or one list of w, h pairs per level (all levels the same length)."""
    if _is_int(anchors):
        if anchors < 1:
            raise AgrideployError(f"{WHERE}: anchors must be at least 1, got {anchors}")
        limits.check("max_anchors", anchors, f"{WHERE}: anchors")
        return
    if not isinstance(anchors, list) or not anchors or not all(isinstance(level, list) for level in anchors):
        raise AgrideployError(f"{WHERE}: anchors must be a count or a non-empty list of [w, h, ...] lists per level")
    sizes = {len(level) for level in anchors}
    if len(sizes) != 1 or 0 in sizes or sizes.pop() % 2:
        raise AgrideployError(f"{WHERE}: every anchors level must list the same, even, non-zero number of values")
    limits.check("max_anchors", len(anchors[0]) // 2, f"{WHERE}: anchors per level")
    limits.check("max_layers", len(anchors), f"{WHERE}: anchor levels")
    if not all(_is_number(v) and v > 0 for level in anchors for v in level):
        raise AgrideployError(f"{WHERE}: anchors must be positive numbers")


def _check_row(i: int, row: Any, gd: float) -> None:
    where = f"{WHERE} layer {i}"
    if not isinstance(row, (list, tuple)) or len(row) != 4:
        raise AgrideployError(f"{where}: expected [from, number, module, args], got {row!r}")
    f, n, name, args = row
    sources = [f] if _is_int(f) else f
    if f == [] and name == "Detect":  # v1.0: the layers with na*(5+nc) outputs, found by parse_model
        sources = [-1]
    if not isinstance(sources, list) or not sources or not all(_is_int(s) and (s == -1 or -i <= s < i) for s in sources):
        raise AgrideployError(f"{where}: 'from' must name earlier layers (an index or a list of them), got {f!r}")
    if not _is_int(n) or n < 1:
        raise AgrideployError(f"{where}: number of repeats must be a positive integer, got {n!r}")
    limits.check("max_repeats", max(round(n * gd), 1) if n > 1 else n, f"{where}: repeats")
    if args is not None and not isinstance(args, list):
        raise AgrideployError(f"{where}: args must be a list, got {args!r}")
    for value in _numbers(args or []):
        limits.check("max_channels", abs(value), f"{where}: argument")


def _numbers(values: Any):
    for v in values:
        if isinstance(v, list):
            yield from _numbers(v)
        elif isinstance(v, float) and not math.isfinite(v):
            raise AgrideployError(f"{WHERE}: arguments must be finite numbers, got {v!r}")
        elif _is_number(v):
            yield v


def check_layer_size(build: Callable[..., Any], args: Tuple[Any, ...], total: int, where: str) -> int:
    """Parameters of the layer `build(*args)[0]`, counted on the meta device first; returns the new running total."""
    import torch

    if not hasattr(torch, "get_default_device"):  # torch < 2.3: no meta-device context, count after building
        return total
    with torch.device("meta"):
        layer = build(*args)[0]
    total += sum(p.numel() for p in layer.parameters())
    limits.check("max_parameters", total, f"{where}: parameters so far")
    return total

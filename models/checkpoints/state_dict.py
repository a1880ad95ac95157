"""Plain state dicts: find them inside training containers, strip wrappers, and read shapes for the record."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

NESTED_KEYS = ("state_dict", "model_state", "model_state_dict", "model", "net", "params")
WRAPPER_PREFIX = "module."  # DataParallel / DistributedDataParallel


def is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(hasattr(v, "shape") and hasattr(v, "dtype") for v in obj.values())
    )


def find_state_dict(obj: Any) -> Optional[Dict[str, Any]]:
    """The state dict in `obj`: obj itself, or one level down under a usual container key."""
    if is_state_dict(obj):
        return strip_wrapper(obj)
    if isinstance(obj, Mapping):
        for key in NESTED_KEYS:
            if is_state_dict(obj.get(key)):
                return strip_wrapper(obj[key])
    return None


def strip_wrapper(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Drop the `module.` prefix that DataParallel adds to every key."""
    return {k[len(WRAPPER_PREFIX) :] if k.startswith(WRAPPER_PREFIX) else k: v for k, v in state_dict.items()}


FOCUS_KEY = "model.0.conv.conv.weight"  # YOLOv5 <= v5.0: layer 0 is Focus, a 2x2 space-to-depth before its Conv


def input_channels(state_dict: Mapping[str, Any]) -> Optional[int]:
    """Bands the network takes: input channels of the first convolution weight in state-dict order.

    A Focus layer's conv sees the 4 pixel phases of every band, so its input count is divided by 4.
    """
    for key, v in state_dict.items():
        if len(v.shape) == 4:
            return int(v.shape[1]) // (4 if key == FOCUS_KEY else 1)
    return None


def num_classes(state_dict: Mapping[str, Any], task: str) -> Optional[int]:
    """Classes from the head: YOLOv5 Detect outputs na*(5+nc) per level; a segmenter's last conv outputs nc."""
    if task == "detect":
        anchors = [k for k in state_dict if k.endswith(".anchors")]
        if not anchors:
            return None
        head = anchors[-1][: -len(".anchors")]
        per_level = state_dict[anchors[-1]].shape[1]
        weight = state_dict.get(head + ".m.0.weight")
        return None if weight is None else int(weight.shape[0]) // int(per_level) - 5
    convs = [v for v in state_dict.values() if len(v.shape) == 4]
    return int(convs[-1].shape[0]) if convs else None

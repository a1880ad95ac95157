"""Segmentation outputs with their dims stated: the class count stays a number, H and W follow the input.

torch's exporter names every dim behind a dynamic-batch Resize or Cast after the node
(`Resizelogits_dim_1`), so a consumer can no longer read the class count or the size from the graph.
The record knows them; this writes them back onto the graph outputs.
"""

from __future__ import annotations

from typing import List, Sequence, Union

Dim = Union[int, str]


def segmentation_output_dims(name: str, classes: int, hw: Sequence[int], dynamic: bool, dynamic_hw: bool) -> List[Dim]:
    """Dims of a segmenter's `logits` (B, K, H, W) or `mask` (B, H, W) output."""
    batch: Dim = "batch" if dynamic else 1
    h, w = ("height", "width") if dynamic_hw else (int(hw[0]), int(hw[1]))
    if name == "mask":
        return [batch, h, w]
    return [batch, int(classes), h, w]


def set_dims(value_info, dims: Sequence[Dim]) -> None:
    """Overwrite the shape of a graph input/output ValueInfoProto (in place)."""
    shape = value_info.type.tensor_type.shape
    while len(shape.dim) < len(dims):
        shape.dim.add()
    for dim, value in zip(shape.dim, dims):
        dim.Clear()
        if isinstance(value, str):
            dim.dim_param = value
        else:
            dim.dim_value = int(value)


def name_segmentation_outputs(model, classes: int, hw: Sequence[int], dynamic: bool, dynamic_hw: bool) -> None:
    """Pin the class dim and the size (or name them height/width) on every segmenter output (in place)."""
    for output in model.graph.output:
        if output.name in ("logits", "mask"):
            set_dims(output, segmentation_output_dims(output.name, classes, hw, dynamic, dynamic_hw))

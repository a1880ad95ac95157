"""Which ONNX opset to write for a TensorRT target, and which the target's parser can read.

Facts from onnx-tensorrt `docs/operators.md` per branch and the TensorRT 11 opset guide
(see the shared tensorrt.md §5.1): 8.5/8.6 parse up to opset 17 (JetPack 5 / 6.0), 10.0-10.3 up
to 20 (JetPack 6.1/6.2), recent 10.x up to 24, 11.x up to 25; all read back to opset 9.
"""

from __future__ import annotations

from typing import Optional

from agrideploy.errors import AgrideployError

TRT_TARGETS = ("8.5", "8.6", "10.3", "10.x", "11.x")
DEFAULT_TARGET = "8.5"  # the oldest target: an opset it parses, every later one parses too
MIN_PARSED_OPSET = 9
MAX_PARSED_OPSET = {"8.5": 17, "8.6": 17, "10.3": 20, "10.x": 24, "11.x": 25}
MIN_EXPORT_OPSET = 11  # Resize with align_corners (DeepLab) and a Detect head that exports cleanly
MAX_EXPORT_OPSET = 20  # the newest the TorchScript-based exporter writes (torch 2.13)


def check_target(target: Optional[str]) -> str:
    target = DEFAULT_TARGET if target is None else str(target)
    if target not in MAX_PARSED_OPSET:
        raise AgrideployError(f"unknown TensorRT target {target!r}; expected one of {', '.join(TRT_TARGETS)}")
    return target


def default_opset(target: Optional[str] = None) -> int:
    """The newest opset both the target's ONNX parser and our exporter handle."""
    return min(MAX_PARSED_OPSET[check_target(target)], MAX_EXPORT_OPSET)


def resolve_opset(opset: Optional[int], target: Optional[str] = None) -> int:
    """--opset if given (refused when a stated target cannot parse it), else the target's default."""
    if opset is None:
        return default_opset(target)
    opset = int(opset)
    if opset < MIN_EXPORT_OPSET:
        raise AgrideployError(f"--opset {opset} is too old: use {MIN_EXPORT_OPSET} or newer (Resize needs it)")
    if opset > max(MAX_PARSED_OPSET.values()):
        raise AgrideployError(f"--opset {opset} is newer than any TensorRT target parses")
    if target is not None and opset > MAX_PARSED_OPSET[check_target(target)]:
        raise AgrideployError(
            f"--opset {opset} is newer than TensorRT {target} parses (up to {MAX_PARSED_OPSET[target]}); "
            f"lower --opset or raise --target-trt"
        )
    return opset

"""The record and the export facts travel inside the ONNX file (`metadata_props`).

Keys: `record.onnx_props()` (our record under `agrideploy`, plus the flat `names`/`stride`/`imgsz`/
`task`/`channels` YOLOv5's DetectMultiBackend and Ultralytics' AutoBackend read), `batch` and `args`
(Ultralytics reads both: the exported batch, and a Python-literal dict of the dynamic/nms flags), and
`agrideploy_export`: JSON of the agrideploy version, opset, exporter and the export flags. Nothing
time- or machine-dependent goes in, so the same export is the same bytes.
A reduced-precision copy adds `agrideploy_precision` (written by optimize/ort_precision.py): how it was
reduced, e.g. the INT8 target and its Q/DQ placement.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Tuple

from agrideploy import __version__
from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord

EXPORT_KEY = "agrideploy_export"
PRECISION_KEY = "agrideploy_precision"


def write_metadata(model, record: ModelRecord, export_info: Dict[str, Any]) -> None:
    """Replace the model's metadata_props with ours and stamp agrideploy as the producer (in place)."""
    props = record.onnx_props()
    flags = export_info.get("flags", {})
    batch = int(flags.get("batch", 1))
    props["batch"] = str(batch)
    props["args"] = repr({"batch": batch, "dynamic": bool(flags.get("dynamic", False)),
                          "nms": flags.get("nms", "none") != "none"})
    props[EXPORT_KEY] = json.dumps(dict(export_info, agrideploy=__version__), sort_keys=True)
    del model.metadata_props[:]
    for key in sorted(props):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, props[key]
    model.producer_name = "agrideploy"
    model.producer_version = __version__
    model.doc_string = ""
    model.graph.doc_string = ""


def read_metadata(model, where: str = "ONNX model") -> Tuple[ModelRecord, Dict[str, Any]]:
    """(record, export info) from a loaded ModelProto; the export info is {} for foreign files."""
    props = {p.key: p.value for p in model.metadata_props}
    record = ModelRecord.from_onnx_props(props, where=where)
    info: Dict[str, Any] = {}
    if EXPORT_KEY in props:
        try:
            info = json.loads(props[EXPORT_KEY])
        except json.JSONDecodeError:
            raise AgrideployError(f"{where}: {EXPORT_KEY} metadata is not valid JSON") from None
    return record, info

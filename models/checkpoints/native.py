"""agrideploy's own checkpoint: the weights plus the model record and how to rebuild the module.

Two containers, both readable without running code from the file: a torch zip (`.pt`, read with
`torch.load(weights_only=True)`: only tensors and strings inside) or `.safetensors` (record and
builder as JSON in its metadata).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping

from agrideploy.models import zoo
from agrideploy.models.checkpoints.factory import build_with_factory
from agrideploy.models.loaded import LoadedModel, LoadOptions, load_weights

from agrideploy.errors import AgrideployError
from agrideploy.fileio import atomic_output
from agrideploy.lazy import require
from agrideploy.record import ModelRecord, parse_imgsz

FORMAT = "agrideploy-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(loaded: LoadedModel, path: str | os.PathLike, force: bool = True) -> Path:
    """Write `loaded` in agrideploy's format: `.safetensors` by suffix, else a torch zip."""
    if loaded.builder is None:
        raise AgrideployError(
            f"a {loaded.source_format} model cannot be saved in agrideploy's format: its architecture exists only as code in the source file"
        )
    record = ModelRecord.from_dict(loaded.record.to_dict())
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in loaded.module.state_dict().items()}
    meta = {"format": FORMAT, "version": str(FORMAT_VERSION), "record": record.to_json(), "builder": json.dumps(loaded.builder)}
    with atomic_output(path, force=force) as tmp:
        if Path(path).suffix.lower() == ".safetensors":
            require("safetensors.torch").save_file(tensors, str(tmp), metadata=meta)
        else:
            require("torch").save(dict(meta, state_dict=tensors), str(tmp))
    return Path(path)


def is_native(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def read_native(obj: Mapping[str, Any], opts: LoadOptions, where: str) -> LoadedModel:
    """A native torch zip's content (already loaded with weights_only=True)."""
    if int(obj.get("version", FORMAT_VERSION)) > FORMAT_VERSION:
        raise AgrideployError(f"{where} was written by a newer agrideploy (format version {obj['version']}); upgrade agrideploy")
    return _rebuild(obj["record"], obj["builder"], obj["state_dict"], opts, where)


def is_safetensors(path: str | os.PathLike) -> bool:
    """safetensors files start with an 8-byte little-endian header length and a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < os.path.getsize(path)


def read_safetensors(path: str | os.PathLike, opts: LoadOptions) -> LoadedModel:
    st = require("safetensors")
    with st.safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != FORMAT:
        raise AgrideployError(
            f"{path}: a safetensors file without an agrideploy record; load it as a state dict with --arch or --factory after converting, or save it with agrideploy"
        )
    return _rebuild(meta["record"], meta["builder"], tensors, opts, str(path))


def _rebuild(record_json: str, builder_json: str, state_dict: Dict[str, Any], opts: LoadOptions, where: str) -> LoadedModel:
    """Rebuild the module the builder describes, load the weights, apply the flags that may change."""
    record = ModelRecord.from_json(record_json)
    builder = json.loads(builder_json)
    zoo.check_channels(opts.channels, record.channels)
    record.names = zoo.class_names(opts.classes, record.names, record.num_classes)
    if record.task == "segment":
        record.output_stride = int(opts.output_stride or record.output_stride or 16)
        builder["output_stride"] = record.output_stride
    elif opts.output_stride is not None:
        raise AgrideployError("--output-stride applies to DeepLabV3+ segmenters only")
    if builder.get("kind") == "factory":
        if opts.factory is None:
            raise AgrideployError(f"{where} was built by --factory {builder['factory']}; pass the same --factory to load it")
        module, match = build_with_factory(opts.factory, state_dict)
    else:
        module = zoo.build_from(builder, channels=record.channels, num_classes=record.num_classes)
        match = load_weights(module, state_dict, where)
        module = module.float().eval()
    record.imgsz = parse_imgsz(opts.imgsz, record.imgsz)
    if record.task == "detect" and any(v % record.max_stride for v in record.imgsz):
        raise AgrideployError(f"--imgsz {record.imgsz} is not a multiple of the model's largest stride {record.max_stride}")
    return LoadedModel(module, record, "agrideploy", match, random_init=not record.pretrained, builder=builder)

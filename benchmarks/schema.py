"""The results document: one versioned JSON file per `agrideploy bench` run.

Reports are pure functions of a set of these documents, possibly written on other machines by other
agrideploy versions, so every document is checked on load against the layout below and refused with
one line naming the first bad field. The layout is documented for users in docs/results-schema.md.
Keys not listed here are allowed (a later minor addition must not break an older report); a newer
`schema_version` is refused, since its meaning may have changed.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from agrideploy.optimize.artefacts import PRECISIONS
from agrideploy.runtime.select import BACKENDS

from agrideploy.errors import AgrideployError
from agrideploy.fileio import write_text_atomic

SCHEMA = "agrideploy-bench"
SCHEMA_VERSION = 1

DEVICE_KINDS = ("cpu", "gpu", "jetson")
RANDOM_NOTE = "random weights: accuracy is meaningless"  # the note every run of a random-weight model carries
ARTEFACT_FORMATS = ("onnx", "engine", "checkpoint")
ACCURACY_KINDS = ("detect", "segment")
STAT_KEYS = ("count", "min", "mean", "median", "p90", "p95", "p99", "max", "std", "cov")


# A tiny declarative type language: the spec below reads like the documented layout. -------------
class _Null:
    """`value or None`."""

    def __init__(self, inner: Any):
        self.inner = inner


class _List:
    def __init__(self, item: Any):
        self.item = item


class _Map:
    """A free-form object whose values all have one type (per-class IoU, clocks...)."""

    def __init__(self, value: Any):
        self.value = value


class _OneOf:
    def __init__(self, *choices: str):
        self.choices = choices


NUM, INT, STR, BOOL, ANY = "number", "integer", "string", "boolean", "any"

STATS = {
    "samples": _List(NUM), "count": INT, "min": NUM, "mean": NUM, "median": NUM, "p90": NUM,
    "p95": NUM, "p99": NUM, "max": NUM, "std": NUM, "cov": NUM, "unstable": BOOL,
}

DEVICE = {
    "kind": _OneOf(*DEVICE_KINDS),
    "name": STR,
    "hostname": STR,
    "cpu": {"model": STR, "cores": _Null(INT), "threads": _Null(INT)},
    "gpu": _Null({"name": STR, "compute_capability": _Null(STR), "driver": _Null(STR), "memory_bytes": _Null(INT)}),
    "jetson": _Null({"module": STR, "l4t": _Null(STR), "jetpack": _Null(STR), "power_mode": _Null(STR), "jetson_clocks": _Null(BOOL)}),
    "clocks": _Map(ANY),
}

SOFTWARE = {
    "python": STR, "numpy": STR, "onnxruntime": _Null(STR), "torch": _Null(STR), "tensorrt": _Null(STR), "cuda": _Null(STR),
}

RUN = {
    "model": {"task": _OneOf(*ACCURACY_KINDS), "arch": STR, "names": _List(STR)},
    "model_stats": {"params": _Null(INT), "gflops": _Null(NUM), "size_bytes": _Null(INT)},
    "artefact": {"path": STR, "sha256": STR, "format": _OneOf(*ARTEFACT_FORMATS)},
    "backend": _OneOf(*BACKENDS),
    "provider": _Null(STR),
    "precision": _OneOf(*PRECISIONS),
    "batch": INT,
    "imgsz": _List(INT),
    "method": {"warmup_s": NUM, "warmup_iters": INT, "iters": INT, "duration_s": _Null(NUM), "timer": STR, "sync": STR},
    "latency_ms": {
        "device": _Null(STATS),
        "host": STATS,
        "end_to_end": _Null(STATS),
        "stages": _Null({"pre": STATS, "infer": STATS, "post": STATS}),
    },
    "throughput": {"images_per_s": NUM, "mpix_per_s": NUM, "tiles_per_s": _Null(NUM)},
    "memory": {
        "host_peak_rss_bytes": _Null(INT), "gpu_peak_bytes": _Null(INT), "engine_bytes": _Null(INT),
        "context_device_bytes": _Null(INT), "jetson_used_bytes": _Null(INT),
    },
    "power": _Null({"rail": STR, "mean_w": NUM, "mj_per_image": NUM, "samples_w": _List(NUM)}),
    # map50/map50_95: COCO-style (pycocotools); documents may add yolov5_map50/yolov5_map50_95 (val.py-style) and
    # detection_settings. miou: dataset-level (one confusion matrix over all images), mean over the classes
    # present in labels or predictions, mask value 255 ignored. See docs/results-schema.md.
    "accuracy": _Null({
        "dataset": STR, "kind": _OneOf(*ACCURACY_KINDS), "map50": _Null(NUM), "map50_95": _Null(NUM),
        "miou": _Null(NUM), "per_class_iou": _Map(_Null(NUM)), "pixel_accuracy": _Null(NUM), "delta_vs_fp32": _Map(NUM),
    }),
    "notes": _List(STR),
}

DOCUMENT = {
    "schema": STR, "schema_version": INT, "created": STR, "agrideploy": STR,
    "device": DEVICE, "software": SOFTWARE, "runs": _List(RUN),
}


class SchemaError(AgrideployError):
    """A results document that does not follow the layout; the message names the field."""


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return NUM
    return {str: STR, list: "list", dict: "object"}.get(type(value), type(value).__name__)


def _check(value: Any, spec: Any, where: str) -> None:
    if isinstance(spec, _Null):
        if value is not None:
            _check(value, spec.inner, where)
        return
    if value is None and spec != ANY:
        raise SchemaError(f"{where}: must not be null")
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {_kind_of(value)}")
        for key, sub in spec.items():
            if key not in value:
                raise SchemaError(f"{where}.{key}: missing")
            _check(value[key], sub, f"{where}.{key}")
    elif isinstance(spec, _List):
        if not isinstance(value, list):
            raise SchemaError(f"{where}: expected a list, got {_kind_of(value)}")
        for i, item in enumerate(value):
            _check(item, spec.item, f"{where}[{i}]")
    elif isinstance(spec, _Map):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {_kind_of(value)}")
        for key, item in value.items():
            _check(item, spec.value, f"{where}.{key}")
    elif isinstance(spec, _OneOf):
        if value not in spec.choices:
            raise SchemaError(f"{where}: {value!r} is not one of {', '.join(spec.choices)}")
    elif spec != ANY:
        kind = _kind_of(value)
        if not (kind == spec or (spec == NUM and kind == INT)):
            raise SchemaError(f"{where}: expected {'an' if spec == INT else 'a'} {spec}, got {kind}")


def _check_stats_counts(run: Dict[str, Any], where: str) -> None:
    """`count` must be the number of samples kept: a report recomputes percentiles from them."""
    latency = run["latency_ms"]
    scopes = [(k, latency[k]) for k in ("device", "host", "end_to_end")]
    scopes += [("stages." + k, v) for k, v in (latency["stages"] or {}).items()]
    for name, stats in scopes:
        if stats is not None and stats["count"] != len(stats["samples"]):
            raise SchemaError(f"{where}.latency_ms.{name}.count: {stats['count']} but {len(stats['samples'])} samples")
        if stats is not None and not stats["samples"]:
            raise SchemaError(f"{where}.latency_ms.{name}.samples: empty")


def validate(doc: Any, where: str = "results") -> Dict[str, Any]:
    """Return `doc` if it is a valid results document, else raise SchemaError naming the bad field."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SchemaError(f"{where}: not an agrideploy bench results document (no \"schema\": \"{SCHEMA}\")")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaError(f"{where}.schema_version: expected a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{where}: schema_version {version} is newer than this agrideploy understands ({SCHEMA_VERSION}); upgrade agrideploy"
        )
    _check(doc, DOCUMENT, where)
    for i, run in enumerate(doc["runs"]):
        _check_stats_counts(run, f"{where}.runs[{i}]")
    return doc


def _expand(paths: Iterable[str | os.PathLike]) -> List[Path]:
    """Files as given; a folder stands for the *.json files in it."""
    out: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.json"))
            if not found:
                raise AgrideployError(f"{p}: no .json results in this folder")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise AgrideployError(f"{p}: no such file")
    return out


def load_results(paths: Sequence[str | os.PathLike]) -> List[Dict[str, Any]]:
    """Read and validate results documents (files, or folders of *.json) in the order given."""
    docs = []
    for path in _expand(paths):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AgrideployError(f"{path}: not valid JSON ({exc})") from None
        docs.append(validate(doc, where=str(path)))
    if not docs:
        raise AgrideployError("no results documents given")
    return docs


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def new_document(device: Dict[str, Any], software: Dict[str, Any], runs: List[Dict[str, Any]],
                 created: Optional[str] = None) -> Dict[str, Any]:
    """A results document around measured runs; validated, so a writer cannot produce what a reader refuses."""
    from agrideploy import __version__

    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": created or now_utc(),
        "agrideploy": __version__,
        "device": device,
        "software": software,
        "runs": runs,
    }
    return validate(doc, where="new results")


def write_results(doc: Dict[str, Any], path: str | os.PathLike, force: bool = False) -> Path:
    """Validate and write atomically; NaN/Infinity are refused since they are not JSON."""
    validate(doc, where=str(path))
    try:
        text = json.dumps(doc, indent=1, allow_nan=False)
    except ValueError:
        raise AgrideployError(f"{path}: results hold NaN or infinity; refusing to write invalid JSON") from None
    return write_text_atomic(path, text + "\n", force=force)

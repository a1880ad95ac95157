"""Results documents flattened into one row per run: the CSV row, and what the tables and plots draw.

`run_rows` keeps every figure a report may show under a flat key, so a report is a function of the
documents alone and runs from several devices merge into one comparison.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

from agrideploy.benchmarks.schema import RANDOM_NOTE
from agrideploy.benchmarks.stats import UNSTABLE_COV
from agrideploy.optimize.artefacts import PRECISIONS

SCOPES = (("compute", "device"), ("host", "host"), ("end_to_end", "end_to_end"))  # (row prefix, schema key)
MIB = float(1 << 20)
CSV_FIELDS = (
    "device", "device_kind", "hostname", "power_mode", "created",
    "label", "model", "task", "channels", "classes", "weights",
    "backend", "provider", "precision", "batch", "imgsz",
    "params", "gflops", "size_bytes",
    "compute_median_ms", "compute_p90_ms", "compute_p99_ms", "compute_cov", "compute_unstable",
    "host_median_ms", "host_mean_ms", "host_p90_ms", "host_p95_ms", "host_p99_ms", "host_min_ms", "host_max_ms",
    "host_std_ms", "host_cov", "host_unstable", "host_count",
    "end_to_end_median_ms", "end_to_end_mean_ms", "end_to_end_p90_ms", "end_to_end_p99_ms", "end_to_end_cov",
    "end_to_end_unstable", "pre_ms", "infer_ms", "post_ms",
    "images_per_s", "mpix_per_s", "tiles_per_s",
    "host_load_bytes", "host_infer_peak_bytes", "gpu_load_bytes", "gpu_infer_peak_bytes",
    "host_peak_rss_bytes", "gpu_peak_bytes", "engine_bytes", "context_device_bytes", "jetson_used_bytes",
    "power_rail", "power_mean_w", "mj_per_image",
    "dataset", "map50", "map50_95", "miou", "pixel_accuracy", "delta_map50", "delta_map50_95", "delta_miou",
    "warmup_s", "iters", "timer", "sync", "threads", "load_avg_before", "load_avg_after", "oversubscribed",
    "cuda_graph", "artefact_sha256", "notes",
)
MEMORY_FIGURES = (  # (row key, what it is), the per-model figures first
    ("host_load_bytes", "host: load"), ("host_infer_peak_bytes", "host: infer peak"),
    ("gpu_load_bytes", "GPU: load"), ("gpu_infer_peak_bytes", "GPU: infer peak"),
    ("engine_bytes", "engine file"), ("context_device_bytes", "context device memory"),
    ("jetson_used_bytes", "Jetson memory in use"), ("host_peak_rss_bytes", "process peak RSS"),
)


# -- flattening ---------------------------------------------------------------------------------


def device_labels(docs: Sequence[Dict[str, Any]]) -> List[str]:
    """One readable label per document; machines sharing a name are told apart by hostname."""
    names = []
    for doc in docs:
        dev = doc.get("device") or {}
        name = str(dev.get("name") or dev.get("hostname") or "unknown device")
        mode = ((dev.get("jetson") or {}).get("power_mode")) if dev.get("kind") == "jetson" else None
        names.append(f"{name} [{mode}]" if mode else name)
    hosts: Dict[str, set] = {}
    for doc, name in zip(docs, names):
        hosts.setdefault(name, set()).add((doc.get("device") or {}).get("hostname"))
    return [
        f"{name} @{(doc.get('device') or {}).get('hostname')}" if len(hosts[name]) > 1 else name
        for doc, name in zip(docs, names)
    ]


def run_rows(docs: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Every run of every document as one flat dict (the keys of CSV_FIELDS, plus host_samples), sorted for reading."""
    rows = []
    for doc, label in zip(docs, device_labels(docs)):
        for run in doc.get("runs") or []:
            rows.append(_flatten(doc, label, run))
    for row, label in zip(rows, run_labels(rows)):
        row["label"] = label
    rows.sort(key=sort_key)
    return rows


def run_labels(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """One label per run, distinct for distinct runs: model, backend, precision and batch, then whatever else
    tells two runs apart (input size, device, threads, provider, time of the document), else a counter."""
    labels = [f"{r['model']} {r['backend']} {r['precision']} b{r['batch']}" for r in rows]
    extras = (("imgsz", "{}"), ("device", "{}"), ("threads", "{} threads"), ("provider", "{}"), ("created", "{}"))
    for key, pattern in extras:
        groups: Dict[str, List[int]] = {}
        for i, label in enumerate(labels):
            groups.setdefault(label, []).append(i)
        for members in groups.values():
            if len(members) > 1 and len({str(rows[i].get(key)) for i in members}) > 1:
                for i in members:
                    labels[i] += f" | {pattern.format(rows[i].get(key))}"
    seen: Counter = Counter(labels)
    count: Counter = Counter()
    for i, label in enumerate(labels):
        if seen[label] > 1:
            count[label] += 1
            labels[i] = f"{label} #{count[label]}"
    return labels


def sort_key(row: Dict[str, Any]) -> Tuple:
    prec = PRECISIONS.index(row["precision"]) if row["precision"] in PRECISIONS else len(PRECISIONS)
    return (row["task"], row["model"], row["imgsz"], row["device"], row["backend"], prec, row["batch"] or 0)


def _flatten(doc: Dict[str, Any], label: str, run: Dict[str, Any]) -> Dict[str, Any]:
    dev = doc.get("device") or {}
    model = run.get("model") or {}
    stats = run.get("model_stats") or {}
    lat = run.get("latency_ms") or {}
    thr = run.get("throughput") or {}
    mem = run.get("memory") or {}
    power = run.get("power") or {}
    acc = run.get("accuracy") or {}
    delta = acc.get("delta_vs_fp32") or {}
    method = run.get("method") or {}
    notes = [str(n) for n in run.get("notes") or []]
    random_weights = not model.get("pretrained", False) or RANDOM_NOTE in notes
    imgsz = run.get("imgsz") or model.get("imgsz") or []
    row: Dict[str, Any] = {
        "device": label,
        "device_kind": dev.get("kind"),
        "hostname": dev.get("hostname"),
        "power_mode": (dev.get("jetson") or {}).get("power_mode"),
        "created": doc.get("created"),
        "model": str(model.get("arch", "?")),
        "task": str(model.get("task", "?")),
        "channels": model.get("channels"),
        "classes": len(model.get("names") or []),
        "weights": "random" if random_weights else "trained",
        "backend": str(run.get("backend", "?")),
        "provider": run.get("provider"),
        "precision": str(run.get("precision", "?")),
        "batch": run.get("batch"),
        "imgsz": "x".join(str(v) for v in imgsz),
        "params": stats.get("params"),
        "gflops": stats.get("gflops"),
        "size_bytes": stats.get("size_bytes"),
        "images_per_s": thr.get("images_per_s"),
        "mpix_per_s": thr.get("mpix_per_s"),
        "tiles_per_s": thr.get("tiles_per_s"),
        "power_rail": power.get("rail"),
        "power_mean_w": power.get("mean_w"),
        "mj_per_image": power.get("mj_per_image"),
        "dataset": acc.get("dataset"),
        "map50": acc.get("map50"),
        "map50_95": acc.get("map50_95"),
        "miou": acc.get("miou"),
        "pixel_accuracy": acc.get("pixel_accuracy"),
        "delta_map50": delta.get("map50"),
        "delta_map50_95": delta.get("map50_95"),
        "delta_miou": delta.get("miou"),
        "warmup_s": method.get("warmup_s"),
        "iters": method.get("iters"),
        "timer": method.get("timer"),
        "sync": method.get("sync"),
        "threads": method.get("threads"),
        "load_avg_before": method.get("load_avg_before"),
        "load_avg_after": method.get("load_avg_after"),
        "oversubscribed": method.get("oversubscribed"),
        "cuda_graph": method.get("cuda_graph"),
        "artefact_sha256": (run.get("artefact") or {}).get("sha256"),
        "notes": "; ".join(notes),
    }
    for key, _ in MEMORY_FIGURES + (("gpu_peak_bytes", ""),):
        row[key] = mem.get(key)
    for prefix, scope in SCOPES:
        _put_stats(row, prefix, lat.get(scope))
    stages = lat.get("stages") or {}
    for stage in ("pre", "infer", "post"):  # means over the end-to-end loop's frames: they add up, medians do not
        row[f"{stage}_ms"] = (stages.get(stage) or {}).get("mean")
    flat = {key: row.get(key) for key in CSV_FIELDS}
    flat["host_samples"] = list((lat.get("host") or {}).get("samples") or [])  # for the distribution figure, not the CSV
    return flat


def _put_stats(row: Dict[str, Any], prefix: str, stats: Optional[Dict[str, Any]]) -> None:
    stats = stats or {}
    for stat in ("median", "mean", "p90", "p95", "p99", "min", "max", "std"):
        row[f"{prefix}_{stat}_ms"] = stats.get(stat)
    row[f"{prefix}_count"] = stats.get("count")
    cov = stats.get("cov")
    row[f"{prefix}_cov"] = cov
    # the flag is recomputed, not trusted: documents from older tools may lack it
    if not stats:
        row[f"{prefix}_unstable"] = None
    else:
        row[f"{prefix}_unstable"] = bool(stats.get("unstable")) or (cov is not None and cov > UNSTABLE_COV)


# -- formatting ---------------------------------------------------------------------------------

"""Pure functions from results documents to the rows and tables a report shows.

Nothing here measures or reads files: a report is a function of the documents alone, so results
from an RTX workstation and three Jetsons merge into one comparison. `run_rows` flattens every
run into one dict (the CSV row, and what the plots draw); the `*_table` functions turn those rows
into formatted tables. Latency keeps its three scopes apart: *compute* (device-side timer, the
schema's `device` scope), *host* (the inference call, copies included) and *end-to-end*
(pre + infer + post). Host latency is the one every backend reports, so comparisons use it.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from agrideploy.benchmarks.schema import RANDOM_NOTE
from agrideploy.benchmarks.stats import UNSTABLE_COV, UNSTABLE_TEXT
from agrideploy.optimize.artefacts import PRECISIONS

SCOPES = (("compute", "device"), ("host", "host"), ("end_to_end", "end_to_end"))  # (row prefix, schema key)
UNSTABLE_MARK = "\u26a0"  # ⚠
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


@dataclass(frozen=True)
class Flagged:
    """A table cell that must not be read at face value; `why` says what is wrong with it."""

    text: str
    why: str

    def __str__(self) -> str:
        return f"{self.text} {UNSTABLE_MARK}"


@dataclass
class Table:
    """A titled grid of already formatted cells (str or Flagged); renderers only lay it out."""

    key: str
    title: str
    columns: List[str]
    rows: List[List[Any]] = field(default_factory=list)
    caption: str = ""


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


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def fmt(value: Any, digits: int = 2) -> str:
    """A number as a reader wants it: fixed decimals, thousands apart, a dash for 'not measured'."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _mib(value: Optional[float]) -> str:
    return fmt(None if value is None else value / MIB, 1)


def _latency_cell(row: Dict[str, Any], prefix: str, stat: str = "median") -> Any:
    text = fmt(row.get(f"{prefix}_{stat}_ms"))
    if row.get(f"{prefix}_unstable"):
        return Flagged(text, f"unstable: {prefix.replace('_', '-')} CoV {100 * row[prefix + '_cov']:.1f} % > {UNSTABLE_TEXT}")
    return text


def _model_cell(row: Dict[str, Any]) -> str:
    return f"{row['model']} (random weights)" if row["weights"] == "random" else row["model"]


def _flags(row: Dict[str, Any]) -> str:
    flags = [
        f"unstable {prefix.replace('_', '-')} (CoV {100 * row[prefix + '_cov']:.1f} %)"
        for prefix, _ in SCOPES
        if row.get(f"{prefix}_unstable")
    ]
    if row.get("oversubscribed"):
        flags.append(f"over-subscribed (load {fmt(row.get('load_avg_before'))} + {row.get('threads') or 1} threads)")
    if row["weights"] == "random":
        flags.append("random weights")
    return ", ".join(flags)


def _drop_empty_columns(table: Table, keep: int) -> Table:
    """Leave out measurement columns nobody filled (e.g. GPU memory in an all-CPU report)."""
    empty = "\u2014"
    cols = [i for i in range(len(table.columns)) if i < keep or any(str(r[i]) != empty for r in table.rows)]
    table.columns = [table.columns[i] for i in cols]
    table.rows = [[r[i] for i in cols] for r in table.rows]
    return table


# -- tables -------------------------------------------------------------------------------------


def device_table(docs: Sequence[Dict[str, Any]]) -> Table:
    table = Table(
        "devices", "Devices", ["Device", "Kind", "CPU", "GPU / module", "Power mode", "Software", "Runs"],
        caption="Where each results document was measured; the software versions travel with the numbers.",
    )
    seen = OrderedDict()  # type: OrderedDict[str, List[Any]]
    for doc, label in zip(docs, device_labels(docs)):
        dev = doc.get("device") or {}
        if label in seen:
            seen[label][-1] += len(doc.get("runs") or [])
            continue
        cpu = dev.get("cpu") or {}
        gpu = dev.get("gpu") or {}
        jetson = dev.get("jetson") or {}
        cpu_text = f"{cpu.get('model', '?')} ({cpu.get('cores', '?')} cores)" if cpu else "\u2014"
        if jetson:
            accel = f"{jetson.get('module', '?')}, L4T {jetson.get('l4t', '?')}, JetPack {jetson.get('jetpack', '?')}"
        elif gpu:
            accel = f"{gpu.get('name', '?')} (sm {gpu.get('compute_capability', '?')}, driver {gpu.get('driver', '?')})"
        else:
            accel = "\u2014"
        mode = "\u2014"
        if jetson:
            clocks = jetson.get("jetson_clocks")
            mode = f"{jetson.get('power_mode', '?')}, jetson_clocks {'on' if clocks else 'off' if clocks is not None else '?'}"
        software = ", ".join(f"{k} {v}" for k, v in sorted((doc.get("software") or {}).items()) if v and k != "numpy")
        seen[label] = [label, dev.get("kind", "?"), cpu_text, accel, mode, software, len(doc.get("runs") or [])]
    table.rows = [[fmt(v) for v in row] for row in seen.values()]
    return table


def latency_table(rows: Sequence[Dict[str, Any]]) -> Table:
    table = Table(
        "latency", "Latency",
        ["Model", "Device", "Backend", "Precision", "Batch", "Input", "Compute median ms", "Host median ms", "Host p90 ms",
         "Host p99 ms", "Host CoV %", "End-to-end median ms", "Images/s (window)", "Threads", "Flags"],
        caption="Milliseconds. Compute: the backend's device-side timer per batch (no copies). Host: the inference call "
        "per batch, copies included. End-to-end: one frame (detection) or one scene of overlapping tiles (segmentation) "
        "through pre-processing + inference + post-processing. Images/s: batch x timed calls / the timed window's wall "
        "time (not 1 / median). Threads: intra-op threads of ONNX Runtime / PyTorch. "
        f"{UNSTABLE_MARK} marks an unstable measurement (CoV > {UNSTABLE_TEXT}): read it as a range and rerun with locked clocks.",
    )
    for r in rows:
        cov = r.get("host_cov")
        table.rows.append([
            _model_cell(r), r["device"], r["backend"], r["precision"], fmt(r["batch"]), r["imgsz"],
            _latency_cell(r, "compute"), _latency_cell(r, "host"), fmt(r["host_p90_ms"]), fmt(r["host_p99_ms"]),
            fmt(None if cov is None else 100 * cov, 1), _latency_cell(r, "end_to_end"), fmt(r["images_per_s"], 1),
            fmt(r["threads"]), _flags(r),
        ])
    return _drop_empty_columns(table, keep=6)


def stage_table(rows: Sequence[Dict[str, Any]]) -> Table:
    table = Table(
        "stages", "End-to-end stage breakdown",
        ["Model", "Device", "Backend", "Precision", "Batch", "Input", "Pre ms", "Infer ms", "Post ms", "End-to-end ms",
         "Pre + post share %"],
        caption="Mean of each stage per frame (detection) or scene (segmentation), over the same frames as the "
        "end-to-end mean beside them, so the stages add up to it (the rest is the loop's own overhead); the latency "
        "table shows medians. A large pre + post share means the engine is not the bottleneck: a faster precision "
        "will not help much.",
    )
    for r in rows:
        if r["infer_ms"] is None:
            continue
        parts = [r[k] for k in ("pre_ms", "infer_ms", "post_ms")]
        share = None
        if None not in parts and sum(parts) > 0:
            share = 100.0 * (parts[0] + parts[2]) / sum(parts)
        table.rows.append([
            _model_cell(r), r["device"], r["backend"], r["precision"], fmt(r["batch"]), r["imgsz"],
            *[fmt(p) for p in parts], _latency_cell(r, "end_to_end", "mean"), fmt(share, 1),
        ])
    return table


def memory_table(rows: Sequence[Dict[str, Any]]) -> Table:
    table = Table(
        "memory", "Memory",
        ["Model", "Device", "Backend", "Precision", "Batch"] + [f"{label[0].upper()}{label[1:]} MiB" for _, label in MEMORY_FIGURES],
        caption="What each model cost the benchmark process: load = resident memory after loading minus a baseline "
        "taken with the runtime imported and no model loaded; infer peak = peak while inferring above the loaded "
        "level; GPU figures are this process's device memory (NVML, desktop GPUs). Engine file and execution-context "
        "device memory (TensorRT); unified memory in use on Jetson. Process peak RSS includes the runtime itself "
        "(hundreds of MiB): it does not compare models.",
    )
    for r in rows:
        table.rows.append([
            _model_cell(r), r["device"], r["backend"], r["precision"], fmt(r["batch"]),
            *[_mib(r[k]) for k, _ in MEMORY_FIGURES],
        ])
    return _drop_empty_columns(table, keep=5)


def power_table(rows: Sequence[Dict[str, Any]]) -> Table:
    table = Table(
        "power", "Power",
        ["Model", "Device", "Backend", "Precision", "Batch", "Rails summed", "Mean W", "mJ / image", "Images/s (window)"],
        caption="Mean module power over the timed window (its input rail, or its disjoint rails summed where it has "
        "none, as named), and energy per image.",
    )
    for r in rows:
        if r["power_mean_w"] is None:
            continue
        table.rows.append([
            _model_cell(r), r["device"], r["backend"], r["precision"], fmt(r["batch"]), fmt(r["power_rail"]),
            fmt(r["power_mean_w"], 1), fmt(r["mj_per_image"], 1), fmt(r["images_per_s"], 1),
        ])
    return table


def accuracy_table(rows: Sequence[Dict[str, Any]]) -> Table:
    table = Table(
        "accuracy", "Accuracy",
        ["Model", "Device", "Backend", "Precision", "Dataset", "mAP@0.5", "mAP@0.5:0.95", "mIoU", "Pixel acc.",
         "\u0394 vs FP32", "Host median ms"],
        caption="Task metrics on the same dataset through every precision; \u0394 vs FP32 in metric points (0-1 scale). "
        "Rows from random weights are flagged: their metrics say nothing about the model.",
    )
    for r in rows:
        if r["dataset"] is None:
            continue
        deltas = [f"{name} {r[key]:+.3f}" for key, name in (("delta_map50_95", "mAP@.5:.95"), ("delta_map50", "mAP@.5"),
                                                           ("delta_miou", "mIoU")) if r[key] is not None]
        cells = [fmt(r[k], 3) for k in ("map50", "map50_95", "miou", "pixel_accuracy")]
        if r["weights"] == "random":
            cells = [Flagged(c, "random weights: accuracy is meaningless") if c != "\u2014" else c for c in cells]
        table.rows.append([
            _model_cell(r), r["device"], r["backend"], r["precision"], r["dataset"], *cells,
            ", ".join(deltas) or "\u2014", _latency_cell(r, "host"),
        ])
    return _drop_empty_columns(table, keep=5)


def headline_run(rows: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The run that stands for a model on a device: batch 1 (else smallest), FP32 first, then FP16, INT8."""
    if not rows:
        return None

    def rank(r: Dict[str, Any]) -> Tuple:
        prec = PRECISIONS.index(r["precision"]) if r["precision"] in PRECISIONS else len(PRECISIONS)
        return (r["batch"] or 0, prec, r["backend"] == "pytorch", r["backend"])

    return min(rows, key=rank)


def model_stats(group: Sequence[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """Parameters, GFLOPs and size of one model at one input size, from whichever of its runs recorded them.

    Size is that of the FP32 artefact where one was measured, else the largest artefact measured.
    """
    sized = [r for r in group if r["size_bytes"] is not None]
    fp32 = [r for r in sized if r["precision"] == "fp32"]
    return {
        "params": next((r["params"] for r in group if r["params"] is not None), None),
        "gflops": next((r["gflops"] for r in group if r["gflops"] is not None), None),
        "size_bytes": max(r["size_bytes"] for r in (fp32 or sized)) if sized else None,
    }


def model_table(rows: Sequence[Dict[str, Any]]) -> Table:
    """Parameters, GFLOPs and size next to each device's latency: the seeds' Fig. 10 as a table."""
    devices = list(OrderedDict.fromkeys(r["device"] for r in rows))
    table = Table(
        "models", "Models: size, cost and speed",
        ["Model", "Task", "Input", "Params M", "GFLOPs", "Size MiB"] + [f"{d} ms" for d in devices],
        caption="GFLOPs at the benchmarked input size; size of the FP32 artefact (else the largest one measured). "
        "Per device: host median at batch 1 of the headline run (FP32 where measured), precision and backend in brackets.",
    )
    groups: "OrderedDict[Tuple, List[Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        groups.setdefault((r["task"], r["model"], r["imgsz"], r["channels"]), []).append(r)
    stats = {key: model_stats(group) for key, group in groups.items()}
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], _pixels(kv[0][2]), stats[kv[0]]["params"] or 0, kv[0][1]))
    for (task, model, imgsz, channels), group in ordered:
        cells = []
        for dev in devices:
            best = headline_run([r for r in group if r["device"] == dev])
            if best is None:
                cells.append("\u2014")
                continue
            text = f"{fmt(best['host_median_ms'])} ({best['precision']}, {best['backend']}, b{best['batch']})"
            cells.append(Flagged(text, "unstable measurement") if best["host_unstable"] else text)
        params, gflops, size = (stats[(task, model, imgsz, channels)][k] for k in ("params", "gflops", "size_bytes"))
        name = model if channels in (None, 3) else f"{model} ({channels} bands)"
        table.rows.append([
            name, task, imgsz, fmt(None if params is None else params / 1e6, 2), fmt(gflops, 2), _mib(size), *cells,
        ])
    return table


def _pixels(imgsz: str) -> int:
    h, _, w = imgsz.partition("x")
    return int(h) * int(w) if h.isdigit() and w.isdigit() else 0


def comparison_table(rows: Sequence[Dict[str, Any]]) -> Optional[Table]:
    """Device against device on the same model, backend, precision, batch and input; None with one device."""
    if len({r["device"] for r in rows}) < 2:
        return None
    groups: "OrderedDict[Tuple, Dict[str, Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        if r["host_median_ms"]:
            groups.setdefault((r["model"], r["backend"], r["precision"], r["batch"], r["imgsz"]), {})[r["device"]] = r
    shared = [(key, by_dev) for key, by_dev in groups.items() if len(by_dev) > 1]
    devices = list(OrderedDict.fromkeys(r["device"] for r in rows if any(r["device"] in b for _, b in shared)))
    table = Table(
        "comparison", "Device against device",
        ["Model", "Backend", "Precision", "Batch", "Input"] + [f"{d} ms" for d in devices] + ["Slowest / fastest"],
        caption="Host median latency of the same configuration measured on several machines.",
    )
    for (model, backend, prec, batch, imgsz), by_dev in shared:
        measured = [r["host_median_ms"] for r in by_dev.values()]
        cells = [_latency_cell(by_dev[d], "host") if d in by_dev else "\u2014" for d in devices]
        table.rows.append([model, backend, prec, fmt(batch), imgsz, *cells, f"{max(measured) / min(measured):.2f}\u00d7"])
    if not table.rows:
        table.caption = "No configuration (model, backend, precision, batch, input) was measured on more than one device."
    return table


def summary_lines(docs: Sequence[Dict[str, Any]], rows: Sequence[Dict[str, Any]]) -> List[str]:
    """What a reader must know before reading any number: scope, stability, weights, provenance notes."""
    devices = list(OrderedDict.fromkeys(r["device"] for r in rows))
    models = list(OrderedDict.fromkeys(r["model"] for r in rows))
    lines = [
        f"{plural(len(rows), 'run')} of {plural(len(models), 'model')} on {plural(len(devices), 'device')}, "
        f"from {plural(len(docs), 'results document')}."
    ]
    unstable = [r for r in rows if any(r.get(f"{p}_unstable") for p, _ in SCOPES)]
    if unstable:
        lines.append(
            f"{UNSTABLE_MARK} {len(unstable)} of {len(rows)} runs are unstable (CoV > {UNSTABLE_TEXT}): their medians are ranges, "
            "not numbers. Lock the clocks (jetson_clocks, nvidia-smi -lgc) and rerun them."
        )
    random_runs = [r for r in rows if r["weights"] == "random"]
    if random_runs:
        lines.append(
            f"{len(random_runs)} of {len(rows)} runs use random weights: their latency and memory are real, "
            "their accuracy is meaningless."
        )
    counts: "OrderedDict[str, List[str]]" = OrderedDict()  # one line per kind of note, not per file or number
    for r in rows:
        for note in {n for n in r["notes"].split("; ") if n and n != RANDOM_NOTE}:
            counts.setdefault(_note_kind(note), []).append(note)
    for notes in counts.values():
        text = notes[0] if len(set(notes)) == 1 else f"{notes[0]} (and {len(set(notes)) - 1} similar)"
        lines.append(f"Note on {len(notes)} of {len(rows)} runs: {text}.")
    return lines


def _note_kind(note: str) -> str:
    """A note with its file names and numbers blanked: notes that differ only there say one thing."""
    words = ["…" if "/" in w or "." in w.strip(".,;:()") or any(c.isdigit() for c in w) else w for w in note.split()]
    return " ".join(words)


def report_tables(docs: Sequence[Dict[str, Any]], rows: Sequence[Dict[str, Any]]) -> List[Table]:
    """Every table of the report, in reading order, leaving out those with nothing in them."""
    tables = [
        device_table(docs), model_table(rows), comparison_table(rows), latency_table(rows), stage_table(rows),
        accuracy_table(rows), memory_table(rows), power_table(rows),
    ]
    return [t for t in tables if t is not None and (t.rows or t.key == "comparison")]

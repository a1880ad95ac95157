"""Pure functions from flat run rows (report/rows.py) to the formatted tables a report shows.

Nothing here measures or reads files: a report is a function of the documents alone. Latency keeps
its three scopes apart: *compute* (device-side timer, the schema's `device` scope), *host* (the
inference call, copies included) and *end-to-end* (pre + infer + post). Host latency is the one
every backend reports, so comparisons use it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from agrideploy.benchmarks.report.rows import (
    MEMORY_FIGURES,
    MIB,
    SCOPES,
    device_labels,
)
from agrideploy.benchmarks.schema import RANDOM_NOTE
from agrideploy.benchmarks.stats import UNSTABLE_TEXT
from agrideploy.optimize.artefacts import PRECISIONS

UNSTABLE_MARK = "\u26a0"  # ⚠

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

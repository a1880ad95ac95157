"""The report's figures, drawn from the flat run rows of `rows.run_rows` as PNG bytes in memory.

matplotlib is imported on first use (it is the `report` extra) and only its object API is used,
never pyplot, so nothing global changes and no display is needed. Every plot function returns None
when the runs hold nothing for it to show (one device, one batch size, no accuracy...).
"""

from __future__ import annotations

import inspect
import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from agrideploy.benchmarks.report.rows import MEMORY_FIGURES, MIB
from agrideploy.benchmarks.report.tables import UNSTABLE_MARK, fmt, headline_run, model_stats
from agrideploy.benchmarks.stats import UNSTABLE_COV, UNSTABLE_TEXT

from agrideploy.lazy import require

MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}
DPI = 110


@dataclass(frozen=True)
class Plot:
    key: str  # file stem: <key>.png
    title: str
    caption: str
    png: bytes


def _figure(width: float, height: float):
    require("matplotlib", "report")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")  # "tight" takes in legends placed outside the axes
    return buf.getvalue()


def _colours(keys: Sequence[str]) -> Dict[str, Any]:
    """One colour per device, in first-seen order, so a device keeps its colour in every figure."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {k: cmap(i % 10) for i, k in enumerate(OrderedDict.fromkeys(keys))}


def _is_effnet(model: str) -> bool:
    from agrideploy.models.zoo import display_family

    return display_family(model).startswith("EfficientNetV2")


def _log_if_wide(ax, values: Sequence[float], axis: str = "y") -> None:
    """Latencies across an RTX and a 2-core CPU span decades: go logarithmic, with plain 1-2-5 numbers on the ticks."""
    values = [v for v in values if v and v > 0]
    if not values or max(values) / min(values) <= 20:
        return
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(ScalarFormatter())
    target.set_minor_formatter(NullFormatter())


def _short(device: str, limit: int = 38) -> str:
    return device if len(device) <= limit else device[: limit - 1] + "\u2026"


# -- the figures --------------------------------------------------------------------------------


def model_comparison(rows: Sequence[Dict[str, Any]]) -> Optional[Plot]:
    """Parameters, GFLOPs and model size against latency per detector, one series per device (seeds' Fig. 10)."""
    det = [r for r in rows if r["task"] == "detect" and r["host_median_ms"]]
    groups: "OrderedDict[Tuple, List[Dict[str, Any]]]" = OrderedDict()
    for r in det:
        groups.setdefault((r["device"], r["model"], r["imgsz"]), []).append(r)
    points = [headline_run(g) for g in groups.values()]
    if len({p["model"] for p in points}) < 2:
        return None
    by_model: "OrderedDict[Tuple[str, str], List[Dict[str, Any]]]" = OrderedDict()
    for r in det:
        by_model.setdefault((r["model"], r["imgsz"]), []).append(r)
    stats = {key: model_stats(group) for key, group in by_model.items()}
    several_sizes = len({p["imgsz"] for p in points}) > 1
    scale = {"params": 1e-6, "gflops": 1.0, "size_bytes": 1.0 / MIB}

    def x_of(p: Dict[str, Any], key: str) -> Optional[float]:
        value = stats[(p["model"], p["imgsz"])][key]
        return None if value is None else value * scale[key]

    labels = {"params": "parameters (M)", "gflops": "GFLOPs at the input size", "size_bytes": "model size (MiB)"}
    panels = [key for key in labels if any(x_of(p, key) is not None for p in points)]  # only what was measured
    if not panels:
        return None
    colours = _colours([r["device"] for r in rows])
    fig = _figure(4.3 * len(panels), 4.4)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False).ravel()
    for ax, key in zip(axes, panels):
        for p in points:
            x = x_of(p, key)
            if x is None:
                continue
            eff = _is_effnet(p["model"])
            ax.scatter(x, p["host_median_ms"], s=110 if eff else 45, marker="*" if eff else MARKERS.get(p["precision"], "o"),
                       color=colours[p["device"]], edgecolors="black" if eff else "none", linewidths=0.6, zorder=3)
            name = f"{p['model']}@{p['imgsz'].split('x')[0]}" if several_sizes else p["model"]
            ax.annotate(name, (x, p["host_median_ms"]), textcoords="offset points", xytext=(5, 3), fontsize=7,
                        fontweight="bold" if eff else "normal")
        ax.set_xlabel(labels[key])
        ax.margins(x=0.25, y=0.08)
        ax.grid(True, alpha=0.3)
    _log_if_wide(axes[0], [p["host_median_ms"] for p in points])
    axes[0].set_ylabel("host latency, median ms (batch 1)")
    _legend(axes[-1], colours, [p["device"] for p in points], ["\u2605 EfficientNetV2 backbone", _MARKER_KEY])
    return Plot(
        "models", "EfficientNetV2-YOLOv5 against YOLOv5: size, cost and speed",
        "Each point is a detector on one device (its headline run: batch 1, FP32 where measured). Stars mark "
        "EfficientNetV2 backbones; lower and further left is better.",
        _png(fig),
    )


def latency_distribution(rows: Sequence[Dict[str, Any]]) -> Optional[Plot]:
    """Every host sample of each run at its smallest batch, relative to its median: the spread a median hides."""
    groups: "OrderedDict[Tuple, List[Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        if r["host_samples"] and r["host_median_ms"]:
            groups.setdefault((r["device"], r["model"], r["imgsz"], r["backend"], r["precision"]), []).append(r)
    runs = [min(g, key=lambda r: r["batch"] or 0) for g in groups.values()]
    if not runs:
        return None
    colours = _colours([r["device"] for r in rows])
    fig = _figure(9, 0.9 + 0.25 * len(runs))
    ax = fig.subplots()
    ax.axvspan(1 - UNSTABLE_COV, 1 + UNSTABLE_COV, color="#dfe9df", zorder=0)
    # matplotlib 3.10 renamed vert=False to orientation="horizontal"; JetPack 5's Python 3.8 stops at 3.7
    horizontal = {"orientation": "horizontal"} if "orientation" in inspect.signature(ax.boxplot).parameters else {"vert": False}
    boxes = ax.boxplot([[v / r["host_median_ms"] for v in r["host_samples"]] for r in runs], widths=0.6, patch_artist=True,
                       flierprops={"markersize": 3}, medianprops={"color": "black"}, **horizontal)
    for box, r in zip(boxes["boxes"], runs):
        box.set_facecolor(colours[r["device"]])
    labels = [f"{UNSTABLE_MARK + ' ' if r['host_unstable'] else ''}{r['label']} ({fmt(r['host_median_ms'])} ms)" for r in runs]
    ax.set_yticks(range(1, len(runs) + 1), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"host latency of every timed sample / the run's median (band: ±{UNSTABLE_TEXT})")
    ax.grid(True, axis="x", alpha=0.3)
    _legend(ax, colours, [r["device"] for r in runs], [f"{UNSTABLE_MARK} CoV > {UNSTABLE_TEXT}: unstable"])
    return Plot("latency", "Latency spread",
                "Every timed sample of each run at its smallest batch, divided by the run's median (in brackets): box = "
                "quartiles, whiskers = 1.5 IQR, dots = outliers. Wide boxes and far dots are runs not to trust to the "
                "millisecond.", _png(fig))


def throughput_vs_batch(rows: Sequence[Dict[str, Any]]) -> Optional[Plot]:
    """Images per second against batch size: where batching stops paying."""
    series: "OrderedDict[Tuple, List[Tuple[int, float]]]" = OrderedDict()
    for r in rows:
        if r["images_per_s"] and r["batch"]:
            series.setdefault((r["model"], r["imgsz"], r["device"], r["backend"], r["precision"]), []).append(
                (r["batch"], r["images_per_s"]))
    series = OrderedDict((k, sorted(v)) for k, v in series.items() if len({b for b, _ in v}) > 1)
    if not series:
        return None
    models = list(OrderedDict.fromkeys((k[0], k[1]) for k in series))
    colours = _colours([r["device"] for r in rows])
    ncol = min(3, len(models))
    nrow = (len(models) + ncol - 1) // ncol
    fig = _figure(4.2 * ncol, 3.1 * nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (model, imgsz) in zip(axes, models):
        batches = set()
        for (m, size, device, _backend, prec), pts in series.items():
            if (m, size) != (model, imgsz):
                continue
            xs, ys = zip(*pts)
            batches.update(xs)
            ax.plot(xs, ys, marker=MARKERS.get(prec, "o"), color=colours[device], linestyle=LINES.get(prec, "-."))
        ax.set_title(f"{model} @ {imgsz}", fontsize=9)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(batches), [str(b) for b in sorted(batches)])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_xlabel("batch")
        ax.set_ylabel("images / s")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(models):]:
        ax.set_visible(False)
    _legend(axes[ncol - 1], colours, [k[2] for k in series], [_MARKER_KEY])
    return Plot("throughput", "Throughput against batch size",
                "Images per second at each batch size measured; colours are devices, markers and line styles precisions.",
                _png(fig))


def accuracy_vs_latency(rows: Sequence[Dict[str, Any]]) -> Optional[Plot]:
    """The trade-off a user picks from: task metric against latency, per precision and device."""
    kinds = [("detect", "map50_95", "mAP@0.5:0.95"), ("segment", "miou", "mIoU")]
    usable = [r for r in rows if r["weights"] == "trained" and r["host_median_ms"]]
    panels = [(key, label, [r for r in usable if r["task"] == task and r[key] is not None]) for task, key, label in kinds]
    panels = [p for p in panels if p[2]]
    if not panels:
        return None
    colours = _colours([r["device"] for r in rows])
    fig = _figure(6.0 * len(panels), 4.4)
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    for ax, (key, label, pts) in zip(axes, panels):
        for r in pts:
            ax.scatter(r["host_median_ms"], r[key], marker=MARKERS.get(r["precision"], "o"), color=colours[r["device"]], s=45,
                       zorder=3)
            name = r["model"] if r["batch"] == 1 else f"{r['model']} b{r['batch']}"
            ax.annotate(name, (r["host_median_ms"], r[key]), textcoords="offset points", xytext=(4, 3), fontsize=6.5)
        _log_if_wide(ax, [r["host_median_ms"] for r in pts], axis="x")
        ax.set_xlabel("host latency, median ms")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    _legend(axes[-1], colours, [r["device"] for p in panels for r in p[2]], [_MARKER_KEY])
    excluded = sum(1 for r in rows if r["weights"] == "random" and (r["map50_95"] is not None or r["miou"] is not None))
    caption = "Up and to the left is better. Each point is one run with accuracy measured."
    if excluded:
        caption += f" {excluded} runs with random weights are left out: their accuracy is meaningless."
    return Plot("accuracy", "Accuracy against latency", caption, _png(fig))


def memory_bars(rows: Sequence[Dict[str, Any]]) -> Optional[Plot]:
    """Memory of each model's headline run per device and backend, one panel per kind of figure."""
    groups: "OrderedDict[Tuple, List[Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        if any(r[k] for k, _ in MEMORY_FIGURES):
            groups.setdefault((r["device"], r["model"], r["imgsz"], r["backend"]), []).append(r)
    runs = [headline_run(g) for g in groups.values()]
    if not runs:
        return None
    kinds = [(k, label) for k, label in MEMORY_FIGURES if any(r[k] for r in runs)]
    colours = _colours([r["device"] for r in rows])
    fig = _figure(2.6 * len(kinds) + 2.5, 0.9 + 0.27 * len(runs))
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False).ravel()
    labels = [r["label"] for r in runs]
    for ax, (key, label) in zip(axes, kinds):
        ax.barh(range(len(runs)), [(r[key] or 0) / MIB for r in runs], color=[colours[r["device"]] for r in runs])
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("MiB")
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(runs)), labels, fontsize=7)
    axes[0].invert_yaxis()
    _legend(axes[-1], colours, [r["device"] for r in runs])
    return Plot("memory", "Memory",
                "Each model's headline run per device and backend (smallest batch, FP32 where measured); a missing bar "
                "was not measured there.", _png(fig))


def device_comparison(rows: Sequence[Dict[str, Any]]) -> Optional[Plot]:
    """The same configurations side by side on every machine that ran them."""
    groups: "OrderedDict[Tuple, Dict[str, Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        if r["host_median_ms"]:
            groups.setdefault((r["model"], r["backend"], r["precision"], r["batch"], r["imgsz"]), {})[r["device"]] = r
    shared = OrderedDict((k, v) for k, v in groups.items() if len(v) > 1)
    devices = list(OrderedDict.fromkeys(d for v in shared.values() for d in v))
    if len(devices) < 2:
        return None
    colours = _colours([r["device"] for r in rows])
    fig = _figure(max(7.0, 0.35 * len(shared) * len(devices) + 1.5), 4.2)
    ax = fig.subplots()
    width = 0.8 / len(devices)
    for j, device in enumerate(devices):
        xs = [i + (j - (len(devices) - 1) / 2) * width for i, v in enumerate(shared.values()) if device in v]
        ys = [v[device]["host_median_ms"] for v in shared.values() if device in v]
        ax.bar(xs, ys, width=width, color=colours[device])
    ax.set_xticks(range(len(shared)), [f"{m} {p} b{b}\n{bk} {s}" for m, bk, p, b, s in shared], fontsize=7, rotation=35,
                  ha="right")
    _log_if_wide(ax, [r["host_median_ms"] for v in shared.values() for r in v.values()])
    ax.set_ylabel("host latency, median ms")
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax, colours, devices)
    return Plot("devices", "Device against device",
                "Host median latency of each configuration measured on more than one machine.", _png(fig))


def stage_bars(rows: Sequence[Dict[str, Any]]) -> Optional[Plot]:
    """Where end-to-end time goes (pre / infer / post) in each model's headline run per device and backend."""
    groups: "OrderedDict[Tuple, List[Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        if None not in (r["pre_ms"], r["infer_ms"], r["post_ms"]):
            groups.setdefault((r["device"], r["model"], r["imgsz"], r["backend"]), []).append(r)
    runs = [headline_run(g) for g in groups.values()]
    if not runs:
        return None
    fig = _figure(9, 0.9 + 0.27 * len(runs))
    ax = fig.subplots()
    labels = [r["label"] if "|" in r["label"] else f"{r['label']} | {_short(r['device'], 34)}" for r in runs]
    total = [100.0 / (r["pre_ms"] + r["infer_ms"] + r["post_ms"] or 1.0) for r in runs]
    left = [0.0] * len(runs)
    for stage, colour in (("pre", "#8fb8de"), ("infer", "#2e6da4"), ("post", "#f0a35e")):
        shares = [r[f"{stage}_ms"] * t for r, t in zip(runs, total)]
        ax.barh(range(len(runs)), shares, left=left, color=colour, label=stage)
        left = [a + b for a, b in zip(left, shares)]
    for i, r in enumerate(runs):  # the same mean the stage table prints
        ax.annotate(f"{fmt(r['end_to_end_mean_ms'])} ms", (100, i), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.set_yticks(range(len(runs)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the mean pre + infer + post (%); end-to-end mean on the right")
    ax.legend(fontsize=7, ncol=3, loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False)  # above: never over the totals
    return Plot("stages", "End-to-end stage breakdown",
                "Share of pre-processing, inference and post-processing in each model's headline run per device and backend.",
                _png(fig))


LINES = {"fp32": "-", "fp16": "--", "int8": ":"}
_MARKER_KEY = "\u25cf fp32  \u25a0 fp16  \u25b2 int8"


def _legend(ax, colours: Dict[str, Any], shown: Sequence[str], notes: Sequence[str] = ()) -> None:
    """Devices (by colour) and any marker keys, outside to the right of `ax`."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=colours[d], label=_short(d, 60))
               for d in OrderedDict.fromkeys(shown)]
    handles += [Line2D([], [], linestyle="", label=note) for note in notes]
    ax.legend(handles=handles, fontsize=7, bbox_to_anchor=(1.05, 1.0), loc="upper left", frameon=False)


PLOTS: Tuple[Callable[[Sequence[Dict[str, Any]]], Optional[Plot]], ...] = (
    model_comparison, device_comparison, latency_distribution, throughput_vs_batch, accuracy_vs_latency, stage_bars,
    memory_bars,
)


def make_plots(rows: Sequence[Dict[str, Any]]) -> List[Plot]:
    """Every figure the runs can support, in reading order.

    Labels are plain text: a model named `yolo$\\frac{$` is drawn as written, never parsed as mathtext.
    """
    if not rows:
        return []
    matplotlib = require("matplotlib", "report")
    with matplotlib.rc_context({"text.parse_math": False}):
        return [p for p in (draw(rows) for draw in PLOTS) if p is not None]

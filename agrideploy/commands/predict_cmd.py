"""`agrideploy predict MODEL SOURCE`: detections or a class map from a checkpoint, ONNX model or engine."""

from __future__ import annotations

import sys

from agrideploy import limits
from agrideploy.commands.common import add_model_source, load_model_from_args
from agrideploy.errors import AgrideployError
from agrideploy.lazy import require


def register(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="run a model on an image, a folder or a whole scene",
        description="Detection: YOLO-format <stem>.txt, an annotated image per input and predictions.json. "
        "Segmentation: the scene is predicted in overlapping tiles; a GeoTIFF class map (same size, CRS and transform) "
        "and a colour preview with a legend. The backend follows the model file (engine: TensorRT, .onnx: ONNX Runtime, "
        "checkpoint: PyTorch) unless --backend says otherwise.",
    )
    add_model_source(p, dest="model")
    p.add_argument("source", help="an image, a folder of images, or a (Geo)TIFF/PNG scene")
    p.add_argument("-o", "--output", default="predictions", metavar="DIR", help="output folder (default: predictions)")
    p.add_argument("--backend", choices=("pytorch", "onnxruntime", "tensorrt"), help="force a backend")
    p.add_argument("--device", choices=("cpu", "cuda"), help="cpu or cuda (default: the best available)")
    p.add_argument("--bands", help="1-based bands to read, e.g. 1,2,3,4 (default: all)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    det = p.add_argument_group("detection")
    det.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    det.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    det.add_argument("--max-det", type=int, default=1000, help="detections kept per image (default 1000)")
    seg = p.add_argument_group("segmentation")
    seg.add_argument("--tile", type=int, help="tile size in pixels (default: the model's input size)")
    seg.add_argument("--overlap", type=float, default=0.5, help="overlap of neighbouring tiles, 0 to <1 (default 0.5)")
    seg.add_argument("--blend", choices=("mean", "gaussian", "cosine"), default="mean", help="weighting of overlapping tiles")
    seg.add_argument("--batch", type=int, default=64, help="tiles per inference call (default 64)")
    dask = p.add_argument_group("Dask cluster (pip install 'agrideploy[distributed]')")
    dask.add_argument("--scheduler", metavar="ADDRESS", help="spread the work over the Dask cluster at ADDRESS (tcp://host:8786)")
    dask.add_argument("--workers", type=int, metavar="N", help="spread the work over N local Dask worker processes")
    dask.add_argument("--block-mb", type=float, metavar="MB",
                      help="split a GeoTIFF scene whose working set exceeds MB into row blocks (default: 1/4 of a worker's memory)")
    dask.add_argument("--images-per-task", type=int, default=16, metavar="N", help="detection images per Dask task (default 16)")
    limits.add_flags(p, "max_pixels", "max_tiles", "allow_vrt")
    p.set_defaults(func=run)


def run(args) -> int:
    from agrideploy.kernels.imageio import check_image, parse_bands
    from agrideploy.runtime import predict
    from agrideploy.runtime.select import artefact_kind, open_runner

    on_cluster = bool(args.scheduler or args.workers is not None)
    if on_cluster:
        check_cluster_args(args)
    bands = parse_bands(args.bands)
    sources = predict.list_sources(args.source)
    for source in sources:  # every image's format and size, before the model is loaded
        check_image(source)
    model = args.model
    if artefact_kind(model) == "checkpoint":
        model = load_model_from_args(args, source=model)
    if on_cluster:
        return run_on_cluster(args, model, sources, bands)
    runner = open_runner(model, args.backend, device=args.device)
    with runner:
        task = runner.record.task
        out_dir = predict.prepare_outputs(args.output, sources, task, args.force)
        with predict.all_or_nothing(predict.planned_outputs(out_dir, sources, task)):
            summary = _predict(args, runner, task, sources, out_dir, bands)
    print(summary.format(), file=sys.stderr)
    return 0


def _note_graph_nms(runner, conf: float, iou: float) -> None:
    from agrideploy.export.nms import NMS_OUTPUTS
    from agrideploy.runtime.detect import graph_nms_note

    if all(name in [s.name for s in runner.output_specs] for name in NMS_OUTPUTS):
        note = graph_nms_note(runner, conf, iou)
        if note:
            print(f"note: {note}", file=sys.stderr)


def check_cluster_args(args) -> None:
    if args.scheduler and args.workers is not None:
        raise AgrideployError("give --scheduler or --workers, not both")
    for flag, value in (("--workers", args.workers), ("--images-per-task", args.images_per_task)):
        if value is not None and value < 1:
            raise AgrideployError(f"{flag} must be at least 1, got {value}")
    if args.block_mb is not None and not args.block_mb > 0:
        raise AgrideployError(f"--block-mb must be positive, got {args.block_mb}")
    require("distributed", "distributed")  # the install hint, before any model is loaded


def run_on_cluster(args, model, sources, bands) -> int:
    """Scenes or image batches spread over Dask workers (runtime.dask_predict); 2 if any failed."""
    from agrideploy.runtime.dask_predict import PredictSettings, dask_client, predict_on_cluster

    settings = PredictSettings(conf=args.conf, iou=args.iou, max_det=args.max_det, tile=args.tile, overlap=args.overlap,
                               blend=args.blend, batch=args.batch, bands=tuple(bands) if bands else None)
    with dask_client(args.scheduler, args.workers) as client:
        summary = predict_on_cluster(client, model, sources, args.output, settings, backend=args.backend, device=args.device,
                                     force=args.force, images_per_task=args.images_per_task,
                                     budget_bytes=int(args.block_mb * (1 << 20)) if args.block_mb else None)
    print(summary.format(), file=sys.stderr)
    return 2 if summary.failed else 0


def _predict(args, runner, task, sources, out_dir, bands):
    from agrideploy.runtime import predict

    if task == "detect":
        _note_graph_nms(runner, args.conf, args.iou)
        return predict.predict_detect(runner, sources, out_dir, conf=args.conf, iou=args.iou, max_det=args.max_det,
                                      bands=bands, force=args.force)
    return predict.predict_segment(runner, sources, out_dir, tile=args.tile, overlap=args.overlap, blend=args.blend,
                                   batch=args.batch, bands=bands, force=args.force)

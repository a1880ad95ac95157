"""`agrideploy export-triton ARTEFACT --repo DIR`: a Triton Inference Server model repository for an ONNX model or engine."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "export-triton",
        help="lay out a Triton model repository for an ONNX model or a TensorRT engine",
        description="Writes <repo>/<name>/config.pbtxt (inputs, outputs, dtypes, dims, max_batch_size, dynamic batching, "
        "instance groups, the agrideploy record) and the model under <repo>/<name>/1/. An ONNX model is served by the "
        "onnxruntime backend, an engine (with its sidecar) by tensorrt_plan.",
    )
    p.add_argument("artefact", help="an .onnx model, or an engine built by `agrideploy build` (its sidecar beside it)")
    p.add_argument("--repo", required=True, metavar="DIR", help="the model repository folder (created if missing)")
    p.add_argument("--name", help="model name in the repository (default: the file name up to its first dot)")
    p.add_argument("--onnx", metavar="PATH", help="engine: the ONNX it was built from (default: the sidecar's, beside the engine)")
    p.add_argument("--max-batch", type=int, metavar="N",
                   help="max_batch_size (default: the engine profile's maximum, or 8 for an ONNX with a dynamic batch axis)")
    p.add_argument("--instances", type=int, default=1, metavar="N", help="model instances per device (default 1)")
    p.add_argument("--kind", choices=("gpu", "cpu"), default="gpu", help="instance kind (default gpu; an ONNX may run on cpu)")
    p.add_argument("--force", action="store_true", help="overwrite an existing config.pbtxt and model file")
    p.set_defaults(func=run)


def run(args) -> int:
    from agrideploy.optimize.triton_repo import export_triton

    model = export_triton(args.artefact, args.repo, name=args.name, onnx_path=args.onnx, max_batch=args.max_batch,
                          instances=args.instances, kind=args.kind, force=args.force)
    batching = f"max_batch_size {model.max_batch_size}" if model.max_batch_size else "fixed batch (max_batch_size 0)"
    print(f"{model.folder}: config.pbtxt and 1/{model.model_file.name}; {batching}", file=sys.stderr)
    return 0

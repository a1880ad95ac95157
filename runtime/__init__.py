"""agrideploy.runtime: one Runner over PyTorch, ONNX Runtime and TensorRT (select.open_runner),
the detection and tiled segmentation pipelines, and what `predict` writes. Importing it loads nothing heavy."""

"""PyTorch runner over a models.LoadedModel: the reference every exported artefact is compared with."""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
from agrideploy.runtime.runner import Runner, TensorSpec

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require


class TorchRunner(Runner):
    """`TorchRunner(loaded, device="cpu", threads=None)`: eval-mode forward under no_grad, NumPy in and out.

    `threads` sets torch's intra-op pool (torch.set_num_threads, process-wide; None leaves torch's
    default, which counts every core the process sees, busy or not).

    Outputs are named as export names them (`output0` for detectors, `logits` for segmenters), so
    the pipelines treat a checkpoint and its ONNX alike.
    """

    backend = "pytorch"

    def __init__(self, loaded, device: str = "cpu", threads: Optional[int] = None):
        super().__init__(loaded.record)
        self.loaded = loaded
        self.device = device
        self.threads = threads
        self.module = None

    def _activate(self) -> None:
        torch = require("torch")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise AgrideployError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu")
        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.module = self.loaded.module.eval().to(self.device)

    def _deactivate(self) -> None:
        self.module = None

    @property
    def input_specs(self) -> List[TensorSpec]:
        """Any batch and size (detectors: multiples of the max stride); pipelines default to the record's imgsz."""
        return [TensorSpec("images", (-1, self.record.channels, -1, -1), "float32")]

    @property
    def output_specs(self) -> List[TensorSpec]:
        if self.record.task == "detect":
            return [TensorSpec("output0", (-1, -1, 5 + self.record.num_classes), "float32")]
        return [TensorSpec("logits", (-1, self.record.num_classes, -1, -1), "float32")]

    def _infer(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        torch = require("torch")
        if len(feed) != 1:
            raise AgrideployError(f"PyTorch models take one input, got {sorted(feed)}")
        x = torch.from_numpy(np.ascontiguousarray(next(iter(feed.values())), dtype=np.float32)).to(self.device)
        with torch.no_grad():
            out = self.module(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return {self.output_specs[0].name: out.float().cpu().numpy()}

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            require("torch").cuda.synchronize()

    def memory(self) -> dict:
        params = sum(p.numel() * p.element_size() for p in self.loaded.module.parameters())
        buffers = sum(b.numel() * b.element_size() for b in self.loaded.module.buffers())
        return {"weights_bytes": int(params + buffers)}

    def describe(self) -> dict:
        torch = require("torch")
        return {"backend": self.backend, "version": torch.__version__, "device": self.device, "arch": self.record.arch}

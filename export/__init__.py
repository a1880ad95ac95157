"""agrideploy.export: torch -> verified, self-describing ONNX.

`to_onnx(loaded, output, ExportConfig(...)) -> ExportResult` is imported on first use, so importing this
package stays light (no torch, no onnx).
"""

from __future__ import annotations

__all__ = ["to_onnx", "ExportConfig", "ExportResult", "VerificationError"]


def __getattr__(name: str):
    if name in __all__:
        from agrideploy.export import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(f"module 'agrideploy.export' has no attribute {name!r}")

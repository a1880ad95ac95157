"""CUDA C -> CUBIN or PTX at run time with NVRTC, so no nvcc or toolchain is needed where kernels run.

NVRTC is a library (libnvrtc) that cuda-python wraps (`cuda.bindings.nvrtc`, `cuda.nvrtc` in older
releases); it runs without a GPU, which is how the CPU tests compile every .cu for every target.
On a device the launchers compile a CUBIN for the GPU's own architecture (no PTX JIT, so no
"PTX too new for this driver"); PTX is the fallback for an architecture this NVRTC cannot target.
Sources include no headers (FP16 goes through PTX conversions), so nothing but libnvrtc is needed.
"""

from __future__ import annotations

from typing import List, Sequence

from agrideploy.errors import AgrideployError

OPTIONS = ("--fmad=false",)  # the NumPy twins round every multiply and add separately


def nvrtc_module():
    """cuda-python's NVRTC bindings; ImportError when cuda-python is not installed."""
    from agrideploy.kernels.cuda_memory import cuda_python_module

    return cuda_python_module("nvrtc")


def _check(result, what: str):
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(getattr(err, "value", err)) != 0:
        raise AgrideployError(f"NVRTC {what} failed: {getattr(err, 'name', err)}")
    return values[0] if len(values) == 1 else values


def supported_archs() -> List[int]:
    """The compute capabilities this NVRTC compiles for, as numbers (87 for sm_87)."""
    return [int(a) for a in _check(nvrtc_module().nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs")]


def version() -> str:
    major, minor = _check(nvrtc_module().nvrtcVersion(), "nvrtcVersion")
    return f"{major}.{minor}"


def compile_source(source: str, name: str, arch: int, output: str = "cubin", options: Sequence[str] = OPTIONS) -> bytes:
    """`source` compiled for compute capability `arch` (87) as "cubin" (sm_87) or "ptx" (compute_87).

    A compile error is one AgrideployError carrying NVRTC's first log line.
    """
    if output not in ("cubin", "ptx"):
        raise ValueError(f"output is cubin or ptx, not {output!r}")
    nvrtc = nvrtc_module()
    program = _check(nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        target = f"--gpu-architecture={'sm' if output == 'cubin' else 'compute'}_{int(arch)}"
        flags = [target.encode()] + [o.encode() for o in options]
        err, *_ = nvrtc.nvrtcCompileProgram(program, len(flags), flags)
        if int(getattr(err, "value", err)) != 0:
            raise AgrideployError(f"NVRTC cannot compile {name} for sm_{arch}: {_log(nvrtc, program) or getattr(err, 'name', err)}")
        getter = "CUBIN" if output == "cubin" else "PTX"
        size = _check(getattr(nvrtc, f"nvrtcGet{getter}Size")(program), f"nvrtcGet{getter}Size")
        image = b" " * size
        _check(getattr(nvrtc, f"nvrtcGet{getter}")(program, image), f"nvrtcGet{getter}")
        return image
    finally:
        nvrtc.nvrtcDestroyProgram(program)


def _log(nvrtc, program) -> str:
    size = _check(nvrtc.nvrtcGetProgramLogSize(program), "nvrtcGetProgramLogSize")
    log = b" " * size
    _check(nvrtc.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
    lines = [line for line in log.decode(errors="replace").rstrip("\0").splitlines() if line.strip()]
    return next((line for line in lines if "error" in line), lines[0] if lines else "")

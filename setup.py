"""agrideploy: one folder per stage at the repository root, each installed as agrideploy.<stage>."""

import re
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
STAGES = ("models", "export", "optimize", "kernels", "runtime", "benchmarks")
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "agrideploy" / "__init__.py").read_text()).group(1)


def subpackages(folder):
    """Every folder below `folder` that holds an __init__.py, as dotted names relative to it."""
    base = ROOT / folder
    return sorted(
        ".".join(p.parent.relative_to(base).parts) for p in base.rglob("__init__.py") if "__pycache__" not in p.parts
    )


OPENCV = "opencv-python-headless>=4.5"
DATA_SUFFIXES = {".yaml", ".cu", ".cuh", ".json", ".html", ".css"}


def data_files(pkg_dir):
    """Data files of one package: in its folder and in sub-folders that are not packages themselves."""
    base, found = ROOT / pkg_dir, []
    for p in base.rglob("*"):
        if p.suffix not in DATA_SUFFIXES or "__pycache__" in p.parts:
            continue
        owner = p.parent
        while owner != base and not (owner / "__init__.py").exists():
            owner = owner.parent
        if owner == base:
            found.append(str(p.relative_to(base)))
    return sorted(found)


packages, package_dir, package_data = [], {}, {}
for folder, name in [("agrideploy", "agrideploy")] + [(s, "agrideploy." + s) for s in STAGES]:
    for rel in subpackages(folder):
        pkg = name + ("." + rel if rel else "")
        packages.append(pkg)
        package_dir[pkg] = str(Path(folder, *rel.split(".")) if rel else Path(folder))
        package_data[pkg] = data_files(package_dir[pkg])

# cuda-python and the NVRTC library per CUDA major (cuda-python 11.7 is the last with Python 3.8 wheels for JetPack 5)
CUDA_PYTHON = {
    11: ["cuda-python>=11.7,<12", "nvidia-cuda-nvrtc-cu11>=11.7,<12"],
    12: ["cuda-python>=12.6,<13", "nvidia-cuda-nvrtc-cu12>=12.6,<13"],
    13: ["cuda-python>=13,<14", "nvidia-cuda-nvrtc>=13,<14"],
}

setup(
    name="agrideploy",
    version=VERSION,
    description="Agricultural vision models from PyTorch checkpoint to measured TensorRT / ONNX Runtime deployment",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    packages=packages,
    package_dir=package_dir,
    package_data=package_data,
    install_requires=["numpy>=1.21", "pyyaml>=5.4", "tqdm>=4.60", "pillow>=8"],
    extras_require={
        # host pre-processing (YOLOv5's own OpenCV calls); a Jetson has OpenCV from JetPack already
        "cv": [OPENCV],
        "export": [OPENCV, "torch>=1.13", "onnx>=1.14", "onnxruntime>=1.15", "onnxslim>=0.1.30", "onnxscript>=0.1", "safetensors>=0.3"],
        # TensorRT itself comes with JetPack, or from NVIDIA's package index on a desktop (see README).
        # The CUDA binding is cuda-python with NVRTC, pinned to the CUDA major of the driver: `trt` = CUDA 12
        # (desktop drivers R525+, JetPack 6); JetPack 5 takes `cuda11`, R580+ drivers / JetPack 7 may take `cuda13`.
        "trt": CUDA_PYTHON[12] + ["nvidia-ml-py>=11.450"],
        "cuda11": CUDA_PYTHON[11],
        "cuda12": CUDA_PYTHON[12],
        "cuda13": CUDA_PYTHON[13],
        # the fallback binding: builds from source against the CUDA toolkit; runs TensorRT, not the NVRTC kernels
        "pycuda": ["pycuda>=2022.1"],
        "report": ["matplotlib>=3.5"],
        "geo": ["rasterio>=1.3"],
        "distributed": ["distributed>=2023.1"],
        # pycocotools: the COCO-style mAP is cross-checked against it
        "dev": [OPENCV, "pytest>=7", "pytest-timeout>=2", "hypothesis>=6", "ruff>=0.5", "vermin>=1.5", "rasterio>=1.3", "matplotlib>=3.5",
                "tritonclient[grpc]>=2.30", "pycocotools>=2.0.6"],
    },
    entry_points={"console_scripts": ["agrideploy=agrideploy.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Image Recognition"],
)

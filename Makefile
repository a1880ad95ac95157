# Two commands do all set-up on a fresh machine:
#   make demo   set up, then run the whole pipeline on the embedded default (ONNX Runtime on the CPU)
#   make test   set up, then run the tests (what CI runs)
#   make test-fast  the quick loop: all tests but those marked slow or gpu
#   make gpu-test  on a CUDA machine: the GPU tests only (kernels, CUDA layer, NVML, timing harness; TensorRT
#               ones too where TensorRT is installed), with cuda-python + nvidia-ml-py (GPU_EXTRAS, default trt = CUDA 12;
#               JetPack 5: make gpu-test EXTRAS=export,report,geo,dev GPU_EXTRAS=cuda11)
# Without an NVIDIA GPU the CPU build of torch is pinned; override with e.g.
#   make demo TORCH_SPEC="torch==2.5.0"            (a CUDA machine)
#   make demo TORCH_SPEC=/path/to/torch-jetson.whl (a Jetson wheel)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_SPEC ?= $(if $(HAS_GPU),torch,torch==2.13.0)
# cuda12: cuda-python + NVRTC, which run without a GPU (the tests compile every .cu with NVRTC)
EXTRAS ?= export,report,geo,distributed,dev,cuda12
DEMO_OUT ?= demo-output
GPU_EXTRAS ?= trt

.PHONY: setup demo test test-fast gpu-test lint clean
setup: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	$(BIN)/agrideploy demo -o $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q tests

# the quick loop while working: every test but those marked slow (> ~20 s on 2 cores) or gpu; stops at the first failure
test-fast: setup
	$(BIN)/python -m pytest -q -x -m "not slow and not gpu" tests

gpu-test: setup
	$(BIN)/pip install --quiet -e ".[$(EXTRAS),$(GPU_EXTRAS)]"
	$(BIN)/python -m pytest -q -rs -m gpu -p no:randomly tests

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info $(DEMO_OUT)

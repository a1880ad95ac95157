"""agrideploy.kernels: pre/post-processing, once, as NumPy references (preprocess, postprocess,
imageio) with CUDA twins (*.cu, launched from gpu.py). Importing it loads nothing heavy."""

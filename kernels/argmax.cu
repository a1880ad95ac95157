// Segmentation: per-pixel argmax over class logits (nc, H*W) -> uint8 class map, and optionally
// an RGB preview through a palette (nc * 3 bytes). NumPy twin: kernels/postprocess.py seg_argmax()
// and colorize(). Ties go to the lower class, as numpy.argmax.
#include <cuda_fp16.h>

template <typename T>
__device__ void argmax_classes(const T* logits, int nc, int pixels, unsigned char* mask,
                               const unsigned char* palette, unsigned char* rgb) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= pixels) return;
    int best_k = 0;
    float best = (float)logits[i];
    for (int k = 1; k < nc; ++k) {
        float v = (float)logits[(size_t)k * pixels + i];
        if (v > best) { best = v; best_k = k; }
    }
    mask[i] = (unsigned char)best_k;
    if (palette != nullptr) {
        rgb[3 * i + 0] = palette[3 * best_k + 0];
        rgb[3 * i + 1] = palette[3 * best_k + 1];
        rgb[3 * i + 2] = palette[3 * best_k + 2];
    }
}

extern "C" __global__ void seg_argmax_f32(const float* logits, int nc, int pixels, unsigned char* mask,
                                          const unsigned char* palette, unsigned char* rgb) {
    argmax_classes<float>(logits, nc, pixels, mask, palette, rgb);
}

extern "C" __global__ void seg_argmax_f16(const __half* logits, int nc, int pixels, unsigned char* mask,
                                          const unsigned char* palette, unsigned char* rgb) {
    argmax_classes<__half>(logits, nc, pixels, mask, palette, rgb);
}

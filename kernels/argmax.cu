// Segmentation: per-pixel argmax over class logits (nc, H*W) -> uint8 class map, and optionally
// an RGB preview through a palette of `colours` entries (3 bytes each). NumPy twin:
// kernels/postprocess.py seg_argmax() and colorize(). Ties go to the lower class, as numpy.argmax.
// A class with no palette entry is never read past the palette: the pixel stays black and
// `missing` is set, so the host raises what colorize() raises.
// Compiled at run time by NVRTC: no headers; FP16 is read through one PTX conversion.

typedef long long index_t;  // 64-bit offsets: nc * pixels passes 2^31 on large scenes

__device__ __forceinline__ float load_logit(const float* p, index_t i) { return p[i]; }

__device__ __forceinline__ float load_logit(const unsigned short* p, index_t i) {
    float v;
    asm("cvt.f32.f16 %0, %1;" : "=f"(v) : "h"(p[i]));
    return v;
}

template <typename T>
__device__ void argmax_classes(const T* logits, int nc, index_t pixels, unsigned char* mask,
                               const unsigned char* palette, int colours, unsigned char* rgb, int* missing) {
    index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= pixels) return;
    int best_k = 0;
    float best = load_logit(logits, i);
    for (int k = 1; k < nc; ++k) {
        float v = load_logit(logits, (index_t)k * pixels + i);
        if (v > best) { best = v; best_k = k; }
    }
    mask[i] = (unsigned char)best_k;
    if (palette == nullptr) return;
    if (best_k >= colours) {
        rgb[3 * i + 0] = rgb[3 * i + 1] = rgb[3 * i + 2] = 0;
        atomicMax(missing, best_k + 1);
        return;
    }
    rgb[3 * i + 0] = palette[3 * best_k + 0];
    rgb[3 * i + 1] = palette[3 * best_k + 1];
    rgb[3 * i + 2] = palette[3 * best_k + 2];
}

extern "C" __global__ void seg_argmax_f32(const float* logits, int nc, index_t pixels, unsigned char* mask,
                                          const unsigned char* palette, int colours, unsigned char* rgb, int* missing) {
    argmax_classes<float>(logits, nc, pixels, mask, palette, colours, rgb, missing);
}

extern "C" __global__ void seg_argmax_f16(const unsigned short* logits, int nc, index_t pixels, unsigned char* mask,
                                          const unsigned char* palette, int colours, unsigned char* rgb, int* missing) {
    argmax_classes<unsigned short>(logits, nc, pixels, mask, palette, colours, rgb, missing);
}

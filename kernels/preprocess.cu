// Fused pre-processing: letterbox (bilinear resize, half-pixel centres, pad) + optional BGR->RGB
// + per-band normalisation + HWC -> CHW + cast, in one pass over the output pixels.
// NumPy twin: kernels/preprocess_ref.py prepare(); the resized value is rounded to uint8 before
// normalising, as the NumPy letterbox stores it.
// Compiled at run time by NVRTC: no headers; FP16 is written through one PTX conversion.
// Offsets are 64-bit: a 4-band 25000 x 25000 scene already has more than 2^31 bytes.

typedef long long index_t;

#define MAX_BANDS 16

struct Placement {
    int src_h, src_w, channels;   // input image (HWC, uint8)
    int dst_h, dst_w;             // model input
    int top, left, rh, rw;        // where the resized image sits in the model input
    float scale_y, scale_x;       // src / resized, computed on the host as float32
    float pad_value, input_scale;
    int swap_rb;                  // 1: input is BGR, model wants RGB
};

__device__ __forceinline__ float sample(const unsigned char* src, const Placement& p, int y, int x, int c) {
    float sy = fminf(fmaxf(((float)y + 0.5f) * p.scale_y - 0.5f, 0.0f), (float)(p.src_h - 1));
    float sx = fminf(fmaxf(((float)x + 0.5f) * p.scale_x - 0.5f, 0.0f), (float)(p.src_w - 1));
    int y0 = (int)floorf(sy), x0 = (int)floorf(sx);
    int y1 = min(y0 + 1, p.src_h - 1), x1 = min(x0 + 1, p.src_w - 1);
    float fy = sy - (float)y0, fx = sx - (float)x0;
    const index_t row = (index_t)p.src_w * p.channels;
    const index_t r0 = (index_t)y0 * row, r1 = (index_t)y1 * row;
    const index_t c0 = (index_t)x0 * p.channels + c, c1 = (index_t)x1 * p.channels + c;
    float v00 = src[r0 + c0], v01 = src[r0 + c1];
    float v10 = src[r1 + c0], v11 = src[r1 + c1];
    float top = v00 * (1.0f - fx) + v01 * fx;
    float bottom = v10 * (1.0f - fx) + v11 * fx;
    return fminf(fmaxf(rintf(top * (1.0f - fy) + bottom * fy), 0.0f), 255.0f);
}

__device__ __forceinline__ void store(float* dst, index_t i, float v) { dst[i] = v; }

__device__ __forceinline__ void store(unsigned short* dst, index_t i, float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    dst[i] = h;
}

template <typename T>
__device__ void letterbox_normalize(const unsigned char* src, T* dst, Placement p, const float* mean, const float* stdev) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= p.dst_w || y >= p.dst_h) return;
    int ry = y - p.top, rx = x - p.left;
    bool inside = ry >= 0 && ry < p.rh && rx >= 0 && rx < p.rw;
    for (int c = 0; c < p.channels && c < MAX_BANDS; ++c) {
        int from = (p.swap_rb && p.channels == 3) ? 2 - c : c;
        float v = inside ? sample(src, p, ry, rx, from) : p.pad_value;
        float out = (v * p.input_scale - mean[c]) / stdev[c];
        store(dst, (index_t)c * p.dst_h * p.dst_w + (index_t)y * p.dst_w + x, out);
    }
}

extern "C" __global__ void letterbox_normalize_f32(const unsigned char* src, float* dst, Placement p, const float* mean, const float* stdev) {
    letterbox_normalize<float>(src, dst, p, mean, stdev);
}

extern "C" __global__ void letterbox_normalize_f16(const unsigned char* src, unsigned short* dst, Placement p, const float* mean, const float* stdev) {
    letterbox_normalize<unsigned short>(src, dst, p, mean, stdev);
}

// YOLOv5 decode + confidence filter over one image's head output (N, 5 + nc), float32.
// NumPy twin: kernels/postprocess.py decode_yolov5(). A row is kept when objectness > conf and
// objectness * best class score > conf (first class wins ties). Kept rows are appended in any
// order with their source row index; the host sorts by that index, so the result is deterministic.
// Compiled at run time by NVRTC (no headers).

typedef long long index_t;

extern "C" __global__ void yolov5_decode(const float* pred, int n, int no, float conf,
                                         float* out, int* rows, int* count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float* p = pred + (index_t)i * no;
    float obj = p[4];
    if (!(obj > conf)) return;
    int best_k = 0;
    float best = p[5] * obj;
    for (int k = 1; k < no - 5; ++k) {
        float s = p[5 + k] * obj;
        if (s > best) { best = s; best_k = k; }
    }
    if (!(best > conf)) return;
    int slot = atomicAdd(count, 1);
    float half_w = p[2] / 2.0f, half_h = p[3] / 2.0f;
    float* o = out + (index_t)slot * 6;
    o[0] = p[0] - half_w;
    o[1] = p[1] - half_h;
    o[2] = p[0] + half_w;
    o[3] = p[1] + half_h;
    o[4] = best;
    o[5] = (float)best_k;
    rows[slot] = i;
}

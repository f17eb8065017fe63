// =================================================================================================
// optimizer.cl — fused, in-place optimiser updates over a flat parameter arena.
//
// Kernels:
//   sgd_update     p -= lr * (g + wd*p [+ Nesterov]), with a momentum buffer     (1-D range over n)
//   adamw_update   decoupled weight decay, then Adam with bias correction        (1-D range over n)
//
// Macros:
//   NESTEROV   define to 1 for Nesterov momentum in sgd_update (default 0).
//   MOMENTUM   define to 1 when sgd_update keeps a momentum buffer (default 0: plain SGD).
//
// Layout: the parameters of many tensors live back to back in one flat buffer (and so do their
// gradients and optimiser states), so one launch updates them all with no host round trip. A
// tensor's slice is a segment: seg_end[s] is the exclusive end of segment s (ascending) and
// seg_decay[s] the weight-decay multiplier of that segment (0 exempts e.g. BatchNorm and biases).
// Each work item finds its segment by binary search. Buffers are (pointer, ulong element offset).
// =================================================================================================

#ifndef NESTEROV
#define NESTEROV 0
#endif
#ifndef MOMENTUM
#define MOMENTUM 0
#endif

static inline float segment_decay(const uint i, const int segments,
                           __global const int* seg_end, const ulong seg_off,
                           __global const float* seg_decay, const ulong decay_off) {
    int lo = 0, hi = segments - 1;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if ((int)i < seg_end[seg_off + mid]) hi = mid; else lo = mid + 1;
    }
    return seg_decay[decay_off + lo];
}

__kernel void sgd_update(const uint n, const float lr, const float momentum, const float dampening,
                         const float weight_decay, const int segments,
                         __global const int* seg_end, const ulong seg_off,
                         __global const float* seg_decay, const ulong decay_off,
                         __global float* p, const ulong p_off,
                         __global const float* g, const ulong g_off,
                         __global float* buf, const ulong buf_off) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float wd = weight_decay * segment_decay(i, segments, seg_end, seg_off, seg_decay, decay_off);
    const float w = p[p_off + i];
    float d = g[g_off + i] + wd * w;
#if MOMENTUM
    const float b = momentum * buf[buf_off + i] + (1.0f - dampening) * d;
    buf[buf_off + i] = b;
#if NESTEROV
    d = d + momentum * b;
#else
    d = b;
#endif
#endif
    p[p_off + i] = w - lr * d;
}

__kernel void adamw_update(const uint n, const float lr, const float beta1, const float beta2,
                           const float epsilon, const float weight_decay,
                           const float bias_correction1, const float bias_correction2, const int segments,
                           __global const int* seg_end, const ulong seg_off,
                           __global const float* seg_decay, const ulong decay_off,
                           __global float* p, const ulong p_off,
                           __global const float* g, const ulong g_off,
                           __global float* m, const ulong m_off,
                           __global float* v, const ulong v_off) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float wd = weight_decay * segment_decay(i, segments, seg_end, seg_off, seg_decay, decay_off);
    const float grad = g[g_off + i];
    float w = p[p_off + i];
    w -= lr * wd * w;
    const float mi = beta1 * m[m_off + i] + (1.0f - beta1) * grad;
    const float vi = beta2 * v[v_off + i] + (1.0f - beta2) * grad * grad;
    m[m_off + i] = mi;
    v[v_off + i] = vi;
    const float mhat = mi / bias_correction1;
    const float vhat = vi / bias_correction2;
    p[p_off + i] = w - lr * mhat / (sqrt(vhat) + epsilon);
}

// =================================================================================================
// pooling.cl — 2-D max and average pooling, global average pooling and the squeeze-and-excitation
// channel scale, forward and backward.
//
// Kernels:
//   maxpool2d_forward                 y = max over the window (1-D range over N*C*OH*OW outputs)
//   maxpool2d_backward                dx[i] = sum of dy over the windows whose first maximum is x[i]
//                                     (gather form: 1-D range over N*C*H*W inputs, no atomics)
//   avgpool2d_forward                 y = sum over the window / (KH*KW)   (range over outputs)
//   avgpool2d_backward                dx[i] = sum of dy over the windows covering i / (KH*KW)
//                                     (gather form: range over inputs)
//   global_avgpool_forward            y[p] = mean of plane p = (n, c)   (one work-group of RWG per p)
//   global_avgpool_backward           dx[i] = dy[i / HW] / HW           (range over inputs)
//   channel_scale_forward             y[i] = x[i] * s[i / HW]           (range over elements)
//   channel_scale_backward_scale      ds[p] = sum over plane p of dy * x (one work-group of RWG per p)
//
// Macros:
//   RWG   work-group size of the per-plane reductions, a power of two (default 64).
//   POOL_KH, POOL_KW, POOL_SH, POOL_SW   maxpool2d_backward's window and stride at compile time
//         (the host sets all four; their int arguments must then agree); unset, it reads them from
//         its arguments.
//
// Layout: NCHW, contiguous; a "plane" is one (n, c) image of H*W elements. Every buffer is passed
// as (pointer, ulong offset in elements). Indices and element counts are 32-bit `int` (the host
// rejects tensors of 2^31 or more elements), so no item divides in 64 bits. Window geometry (KH, KW, SH, SW, PH, PW) comes as int
// arguments; the output size is floor((H + 2*PH - KH) / SH) + 1 (PyTorch's ceil_mode=False), and
// PH <= KH/2, PW <= KW/2, so every window holds at least one real element. The 1-D global size may
// exceed the element count (rounded up to the work-group size): those kernels check their index.
//
// Max pooling: padding counts as -inf, i.e. padded positions are skipped. The window is scanned
// row by row (kh outer, kw inner) and the first element strictly greater than the running maximum
// wins, so ties go to the first maximum in scan order; a NaN always replaces the running maximum
// (NaN propagates, as in PyTorch). The backward kernel re-runs the same scan for each window that
// covers its input element, so forward and backward agree on the argmax without saving indices.
//
// Average pooling counts padded positions as zeros in the divisor (count_include_pad=True).
// =================================================================================================

#ifndef RWG
#define RWG 64
#endif

#include "reduce.h"

// Row-major index (within a plane) of the first maximum of window (oh, ow).
static inline int window_argmax(__global const float* xp, const int H, const int W, const int oh, const int ow,
                         const int KH, const int KW, const int SH, const int SW, const int PH, const int PW) {
    const int h0 = oh * SH - PH, w0 = ow * SW - PW;
    float best = -INFINITY;
    int best_index = -1;
    for (int kh = 0; kh < KH; ++kh) {
        const int h = h0 + kh;
        if (h < 0 || h >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int w = w0 + kw;
            if (w < 0 || w >= W) continue;
            const float v = xp[h * W + w];
            // The first real element always wins, even when it is -inf.
            if (best_index < 0 || v > best || isnan(v)) {
                best = v;
                best_index = h * W + w;
            }
        }
    }
    return best_index;
}

__kernel void maxpool2d_forward(const int n, const int H, const int W, const int OH, const int OW,
                                const int KH, const int KW, const int SH, const int SW, const int PH, const int PW,
                                __global const float* x, const ulong x_off,
                                __global float* y, const ulong y_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int row = i / OW;
    const int ow = i - row * OW;
    const int plane = row / OH;
    const int oh = row - plane * OH;
    __global const float* xp = x + x_off + plane * H * W;
    y[y_off + i] = xp[window_argmax(xp, H, W, oh, ow, KH, KW, SH, SW, PH, PW)];
}

// The outputs along one axis whose windows cover input position `pos`:
// o*S - P <= pos <= o*S - P + K - 1, clamped to [0, O).
static inline int2 covering_outputs(const int pos, const int K, const int S, const int P, const int O) {
    const int lo_num = pos + P - K + 1;
    const int lo = lo_num <= 0 ? 0 : (lo_num + S - 1) / S;
    const int hi = min((pos + P) / S, O - 1);
    return (int2)(lo, hi);
}

// The window size and stride of the backward kernel: compile-time with POOL_KH, POOL_KW, POOL_SH
// and POOL_SW (the host always sets them), so that every loop below has a constant trip count and
// unrolls into straight-line code with selects, which POCL vectorises across items; its runtime-
// bounded loops kept the kernel scalar (2.15 s of a 4-step VGG-11 profile). Without the macros the
// same code runs on the kernel's int arguments.
#ifdef POOL_KH
#define BKH POOL_KH
#define BKW POOL_KW
#define BSH POOL_SH
#define BSW POOL_SW
#else
#define BKH KH
#define BKW KW
#define BSH SH
#define BSW SW
#endif

// Whether input position `self` of plane xp is the first maximum of window (oh, ow), for a window
// that exists (0 <= oh < OH, 0 <= ow < OW): window_argmax's scan with every load in bounds
// (clamped, and masked out where it falls in the padding).
static inline bool window_picks(__global const float* xp, const int H, const int W, const int oh, const int ow,
                                const int KH, const int KW, const int SH, const int SW, const int PH, const int PW,
                                const int self) {
    const int h0 = oh * BSH - PH, w0 = ow * BSW - PW;
    float best = -INFINITY;
    int best_index = -1;
    _Pragma("unroll")
    for (int kh = 0; kh < BKH; ++kh) {
        const int h = h0 + kh;
        const bool row_in = h >= 0 && h < H;
        const int hc = clamp(h, 0, H - 1);
        _Pragma("unroll")
        for (int kw = 0; kw < BKW; ++kw) {
            const int w = w0 + kw;
            const bool in = row_in && w >= 0 && w < W;
            const float v = xp[hc * W + clamp(w, 0, W - 1)];
            // The first real element always wins, even when it is -inf; NaN replaces the maximum.
            const bool take = in && (best_index < 0 || v > best || isnan(v));
            best = take ? v : best;
            best_index = take ? h * W + w : best_index;
        }
    }
    return best_index == self;
}

__kernel void maxpool2d_backward(const int n, const int H, const int W, const int OH, const int OW,
                                 const int KH, const int KW, const int SH, const int SW, const int PH, const int PW,
                                 __global const float* dy, const ulong dy_off,
                                 __global const float* x, const ulong x_off,
                                 __global float* dx, const ulong dx_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int row = i / W;
    const int iw = i - row * W;
    const int plane = row / H;
    const int ih = row - plane * H;
    __global const float* xp = x + x_off + plane * H * W;
    __global const float* dyp = dy + dy_off + plane * OH * OW;
    const int2 rows = covering_outputs(ih, BKH, BSH, PH, OH);
    const int2 cols = covering_outputs(iw, BKW, BSW, PW, OW);
    const int self = ih * W + iw;
    float acc = 0.0f;
    // At most ceil(K/S) windows cover a position along each axis: candidates rows.x + a, a fixed
    // count of them, those past rows.y masked out (and their loads clamped into the plane).
    _Pragma("unroll")
    for (int a = 0; a < (BKH + BSH - 1) / BSH; ++a) {
        const int oh = rows.x + a;
        _Pragma("unroll")
        for (int b = 0; b < (BKW + BSW - 1) / BSW; ++b) {
            const int ow = cols.x + b;
            const bool live = oh <= rows.y && ow <= cols.y;
            const int ohc = min(oh, OH - 1), owc = min(ow, OW - 1);
            const float g = dyp[ohc * OW + owc];
            acc += (live && window_picks(xp, H, W, ohc, owc, KH, KW, SH, SW, PH, PW, self)) ? g : 0.0f;
        }
    }
    dx[dx_off + i] = acc;
}

__kernel void avgpool2d_forward(const int n, const int H, const int W, const int OH, const int OW,
                                const int KH, const int KW, const int SH, const int SW, const int PH, const int PW,
                                __global const float* x, const ulong x_off,
                                __global float* y, const ulong y_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int row = i / OW;
    const int ow = i - row * OW;
    const int plane = row / OH;
    const int oh = row - plane * OH;
    __global const float* xp = x + x_off + plane * H * W;
    const int h0 = oh * SH - PH, w0 = ow * SW - PW;
    float acc = 0.0f;
    for (int kh = 0; kh < KH; ++kh) {
        const int h = h0 + kh;
        if (h < 0 || h >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            const int w = w0 + kw;
            if (w >= 0 && w < W) acc += xp[h * W + w];
        }
    }
    y[y_off + i] = acc / (float)(KH * KW);
}

__kernel void avgpool2d_backward(const int n, const int H, const int W, const int OH, const int OW,
                                 const int KH, const int KW, const int SH, const int SW, const int PH, const int PW,
                                 __global const float* dy, const ulong dy_off,
                                 __global float* dx, const ulong dx_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int row = i / W;
    const int iw = i - row * W;
    const int plane = row / H;
    const int ih = row - plane * H;
    __global const float* dyp = dy + dy_off + plane * OH * OW;
    const int2 rows = covering_outputs(ih, KH, SH, PH, OH);
    const int2 cols = covering_outputs(iw, KW, SW, PW, OW);
    float acc = 0.0f;
    for (int oh = rows.x; oh <= rows.y; ++oh) {
        for (int ow = cols.x; ow <= cols.y; ++ow) acc += dyp[oh * OW + ow];
    }
    dx[dx_off + i] = acc / (float)(KH * KW);
}

// Sum of v over the work-group (RWG items); every item gets the result.
static inline float group_sum(__local float* scratch, const float v) {
    const int lid = get_local_id(0);
    scratch[lid] = v;
    tree_sum(scratch, lid, RWG);
    return scratch[0];
}

__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void global_avgpool_forward(const int planes, const int HW,
                            __global const float* x, const ulong x_off,
                            __global float* y, const ulong y_off) {
    __local float scratch[RWG];
    // The launch is exactly planes * RWG items, so whole groups share p (no early return before
    // the barriers of group_sum).
    const int p = get_group_id(0);
    __global const float* xp = x + x_off + p * HW;
    float acc = 0.0f;
    for (int j = get_local_id(0); j < HW; j += RWG) acc += xp[j];
    const float total = group_sum(scratch, acc);
    if (get_local_id(0) == 0 && p < planes) y[y_off + p] = total / (float)HW;
}

__kernel void global_avgpool_backward(const int n, const int HW,
                                      __global const float* dy, const ulong dy_off,
                                      __global float* dx, const ulong dx_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    dx[dx_off + i] = dy[dy_off + i / HW] / (float)HW;
}

__kernel void channel_scale_forward(const int n, const int HW,
                                    __global const float* x, const ulong x_off,
                                    __global const float* s, const ulong s_off,
                                    __global float* y, const ulong y_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = x[x_off + i] * s[s_off + i / HW];
}

__kernel __attribute__((reqd_work_group_size(RWG, 1, 1)))
void channel_scale_backward_scale(const int planes, const int HW,
                                  __global const float* dy, const ulong dy_off,
                                  __global const float* x, const ulong x_off,
                                  __global float* ds, const ulong ds_off) {
    __local float scratch[RWG];
    const int p = get_group_id(0);
    __global const float* dyp = dy + dy_off + p * HW;
    __global const float* xp = x + x_off + p * HW;
    float acc = 0.0f;
    for (int j = get_local_id(0); j < HW; j += RWG) acc += dyp[j] * xp[j];
    const float total = group_sum(scratch, acc);
    if (get_local_id(0) == 0 && p < planes) ds[ds_off + p] = total;
}

// =================================================================================================
// conv.cl — 2-D convolution helpers around CLBlast GEMM: im2col / col2im and the bias terms.
//
// Kernels:
//   im2col              col[b, c, kh, kw, oh, ow] = x[b, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
//                       (0 where the tap falls in the padding)
//                       (2-D range: output pixels, or output rows with ROW_LOOP, x up to 32,768
//                       items that stride over the (b, c, kh, kw) planes)
//   col2im              dx[b, c, ih, iw] = sum of col[b, c, kh, kw, oh, ow] over the taps that read
//                       (ih, iw); gather form, no atomics; writes every dx entry
//                       (2-D range: input pixels, or input rows with ROW_LOOP, x up to 32,768
//                       items that stride over the (b, c) planes)
//   conv_bias_forward   y[n, o, p] += bias[o]                       (1-D range, one item per y entry)
//   conv_bias_backward  db[o] = sum over n, p of dy[n, o, p]        (one work-group of WG per channel,
//                                                                    global size O * WG)
//
// Macros:
//   WG         work-group size of conv_bias_backward, a power of two (default 256).
//   ROW_LOOP   1 on CPU devices: im2col and col2im items loop over a row instead of taking one
//              pixel each (default 0, the GPU-friendly form).
//
// Layout: tensors are NCHW, contiguous. Column entry (b, row = (c*KH + kh)*KW + kw, p = oh*OW + ow)
// of a batch chunk lives at b*sample_stride + row*row_stride + p. The host uses the "wide" layout
// sample_stride = P, row_stride = nb*P: the chunk is one [C*KH*KW, nb*P] matrix whose columns run
// over (sample, pixel), so one GEMM per group covers the whole chunk; rows of group g (channels
// g*C/G .. (g+1)*C/G - 1) are one contiguous block, so the kernels need not know about groups.
// (sample_stride = C*KH*KW*P, row_stride = P is the per-sample layout.) x and dx are passed already offset to the chunk's first
// sample. Every buffer is (pointer, ulong offset in elements); linear indices are computed in
// ulong because a chunk's x can exceed 2^31 elements even when its column buffer does not.
// Global sizes are rounded up to the work-group size: every kernel bounds-checks.
// =================================================================================================

#ifndef WG
#define WG 256
#endif
#ifndef ROW_LOOP
#define ROW_LOOP 0
#endif

#include "reduce.h"

__kernel void im2col(const int planes,
                     const int C, const int H, const int W,
                     const int KH, const int KW, const int OH, const int OW,
                     const int stride_h, const int stride_w,
                     const int pad_h, const int pad_w,
                     const int dil_h, const int dil_w,
                     const ulong sample_stride, const ulong row_stride,
                     __global const float* x, const ulong x_off,
                     __global float* col, const ulong col_off) {
#if ROW_LOOP
    // CPU devices: dim 0 is an output row oh, dim 1 a (b, c, kh, kw) plane; each item writes
    // the OW contiguous entries of its row with a plain loop (no per-element division).
    const int oh = get_global_id(0);
    if (oh >= OH) return;
#else
    // GPU devices: dim 0 is an output pixel p = oh*OW + ow, dim 1 a plane, so neighbouring
    // work items write neighbouring entries. 32-bit index math: 64-bit division per element
    // made this kernel as slow as the GEMM.
    const int p = get_global_id(0);
    if (p >= OH * OW) return;
    const int oh = p / OW;
#endif
    // Dimension 1 may be smaller than the plane count (GPU grids allow 65,535 groups there):
    // each item strides over the planes.
    for (int q = get_global_id(1); q < planes; q += get_global_size(1)) {
    int t = q;
    const int kw = t % KW; t /= KW;
    const int kh = t % KH; t /= KH;
    // t is now b * C + c: the index of the (sample, channel) plane in x.
    const int b = t / C;
    const ulong row = (ulong)(((t - b * C) * KH + kh) * KW + kw);
    __global float* out = col + col_off + (ulong)b * sample_stride + row * row_stride + (ulong)(oh * OW);
    const int ih = oh * stride_h - pad_h + kh * dil_h;
    const bool row_inside = ih >= 0 && ih < H;
    __global const float* in = x + x_off + ((ulong)t * (ulong)H + (ulong)(row_inside ? ih : 0)) * (ulong)W;
    // Padding taps are written as 0, never skipped: the column buffer comes from a pool and may
    // hold anything.
#if ROW_LOOP
    for (int ow = 0; ow < OW; ++ow) {
        const int iw = ow * stride_w - pad_w + kw * dil_w;
        out[ow] = (row_inside && iw >= 0 && iw < W) ? in[iw] : 0.0f;
    }
#else
    const int ow = p - oh * OW;
    const int iw = ow * stride_w - pad_w + kw * dil_w;
    out[ow] = (row_inside && iw >= 0 && iw < W) ? in[iw] : 0.0f;
#endif
    }
}

__kernel void col2im(const int planes,
                     const int C, const int H, const int W,
                     const int KH, const int KW, const int OH, const int OW,
                     const int stride_h, const int stride_w,
                     const int pad_h, const int pad_w,
                     const int dil_h, const int dil_w,
                     const ulong sample_stride, const ulong row_stride,
                     __global const float* col, const ulong col_off,
                     __global float* dx, const ulong dx_off) {
#if ROW_LOOP
    // CPU devices: dim 0 is an input row ih, dim 1 a (b, c) plane; the item loops over the row.
    const int ih = get_global_id(0);
    if (ih >= H) return;
#else
    // GPU devices: dim 0 is an input pixel ih*W + iw, dim 1 a (b, c) plane.
    const int pix = get_global_id(0);
    if (pix >= H * W) return;
    const int ih = pix / W;
#endif
    // Dimension 1 strides over the (b, c) planes, as in im2col.
    for (int plane = get_global_id(1); plane < planes; plane += get_global_size(1)) {
    const int b = plane / C;
    const int c = plane - b * C;
    __global const float* base = col + col_off + (ulong)b * sample_stride + (ulong)c * (ulong)(KH * KW) * row_stride;
    __global float* out = dx + dx_off + (ulong)plane * (ulong)(H * W) + (ulong)(ih * W);
#if ROW_LOOP
    for (int iw = 0; iw < W; ++iw) {
#else
    {
        const int iw = pix - ih * W;
#endif
        float acc = 0.0f;
        for (int kh = 0; kh < KH; ++kh) {
            // Output row oh reads input row ih through tap kh when oh*sh = ih + ph - kh*dh.
            const int th = ih + pad_h - kh * dil_h;
            if (th < 0 || th % stride_h != 0) continue;
            const int oh = th / stride_h;
            if (oh >= OH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                const int tw = iw + pad_w - kw * dil_w;
                if (tw < 0 || tw % stride_w != 0) continue;
                const int ow = tw / stride_w;
                if (ow >= OW) continue;
                acc += base[(ulong)(kh * KW + kw) * row_stride + (ulong)(oh * OW + ow)];
            }
        }
        // Every input pixel is written, including those no tap reads (they get 0).
        out[iw] = acc;
    }
    }
}

__kernel void conv_bias_forward(const uint total, const int O, const int P,
                                __global const float* bias, const ulong bias_off,
                                __global float* y, const ulong y_off) {
    // 32-bit index math (the host keeps y under 2^31 elements): a 64-bit division per element
    // costs GPUs a multi-instruction sequence.
    const uint i = get_global_id(0);
    if (i >= total) return;
    const int o = (int)((i / (uint)P) % (uint)O);
    y[y_off + i] += bias[bias_off + o];
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void conv_bias_backward(const int N, const int O, const int P,
                        __global const float* dy, const ulong dy_off,
                        __global float* db, const ulong db_off) {
    __local float partial[WG];
    const int o = get_group_id(0);
    const int lid = get_local_id(0);
    if (o >= O) return;   // whole group exits together, so no barrier is skipped by part of it
    // Sample by sample, the group strides over the plane: no division per element.
    float acc = 0.0f;
    for (int n = 0; n < N; ++n) {
        __global const float* plane = dy + dy_off + ((ulong)n * (ulong)O + (ulong)o) * (ulong)P;
        for (int p = lid; p < P; p += WG) acc += plane[p];
    }
    partial[lid] = acc;
    tree_sum(partial, lid, WG);
    if (lid == 0) db[db_off + o] = partial[0];
}

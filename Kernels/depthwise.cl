// =================================================================================================
// depthwise.cl — depthwise 2-D convolution (groups == C_in == C_out: one KHxKW filter per channel,
// as in MobileNet / EfficientNet MBConv blocks), forward and both gradients, computed directly:
// no im2col, no GEMM.
//
// Kernels:
//   depthwise_forward                 y[n, c, oh, ow] = bias[c] + sum over kh, kw of
//                                       w[c, kh, kw] * x[n, c, oh*SH - PH + kh, ow*SW - PW + kw]
//                                     (2-D work-groups of TW x TH items of one (n, c) plane, each
//                                     OPX neighbouring outputs of a row (a sliding window over the
//                                     row of the patch, the filter in registers); the tile's input
//                                     patch is staged in local memory, padding as 0; global size
//                                     [ceil(OW/(TW*OPX))*TW * N*C, ceil(OH/TH)*TH]: the planes ride
//                                     in dimension 0 beside the row tiles, within GPU grid limits)
//   depthwise_backward_data           dx[n, c, ih, iw] = sum of dy[n, c, oh, ow] * w[c, kh, kw] over
//                                     the taps with oh*SH - PH + kh = ih and ow*SW - PW + kw = iw
//                                     (gather form, no atomics; TW x TH items, OPX neighbouring dx
//                                     pixels of a row each, with the dy patch they read in local
//                                     memory; writes every dx entry; global size
//                                     [ceil(W/(TW*OPX))*TW * N*C, ceil(H/TH)*TH], planes as above)
//   depthwise_backward_weight         partial[c, s, kh, kw] = sum over the positions (n, oh, ow)
//                                     given to split s of dy[n, c, oh, ow] * x[n, c, ih, iw]
//                                     (one work-group of WG items per (split, channel): global size
//                                     [splits*WG, C]; private sums per tap, then a work-group tree
//                                     reduction, reduce.h's tree_sum_rows; no atomics)
//   depthwise_backward_weight_reduce  dw[c, kh, kw] = sum over s of partial[c, s, kh, kw]
//                                     (1-D range over dw, fixed summation order: deterministic)
//
// Macros:
//   KH, KW   kernel height and width (default 3x3)
//   SH, SW   stride (default 1)
//   PH, PW   padding (default KH/2, KW/2: "same")
//   TH, TW   the work-group, TW x TH x 1 items (default 8x8), the host's choice per plane size:
//            256 items (16 x 16) on planes of 16 x 16 and more
//   OPX      outputs (dx pixels for backward data) per item along a row (default 1): the tile
//            is TW*OPX x TH
//   WG       work-group size of depthwise_backward_weight: a power of two >= KH*KW (default 64)
// Dilation is 1. The host compiles one program per (KH, KW, SH, SW, PH, PW), so every tap loop has
// constant bounds and unrolls.
//
// Layout: x, y, dy, dx are NCHW and contiguous; w and dw are [C, 1, KH, KW]. Every buffer is
// (pointer, ulong offset in elements); plane and linear indices are ulong, in-plane coordinates
// int. Work-items past the image edge still load their share of the tile and reach every barrier;
// they only skip the final store.
// =================================================================================================

#include "window.h"
#include "reduce.h"
#ifndef PH
#define PH (KH / 2)
#endif
#ifndef PW
#define PW (KW / 2)
#endif
#ifndef TH
#define TH 8
#endif
#ifndef TW
#define TW 8
#endif
#ifndef WG
#define WG 64
#endif
#ifndef OPX
#define OPX 1
#endif

#define KK (KH * KW)
#if KK > WG
#error "WG must be at least KH*KW: the reduction's first KH*KW items write the tap sums"
#endif

// Input patch of one forward tile: output rows oh0 .. oh0+TH-1 read input rows
// oh0*SH - PH .. (oh0+TH-1)*SH - PH + KH-1.
#define TILE_W (TW * OPX)
#define IN_TH ((TH - 1) * SH + KH)
#define IN_TW ((TILE_W - 1) * SW + KW)
// The patch columns one item's OPX outputs read along a row.
#define SPAN ((OPX - 1) * SW + KW)

// dy patch of one backward-data tile: input rows ih0 .. ih0+TH-1 are read by output rows
// oh in [ceil((ih0 + PH - KH + 1) / SH), floor((ih0 + TH - 1 + PH) / SH)]: at most
// floor((TH + KH - 2) / SH) + 1 of them, whatever the tile's alignment.
#define DY_TH ((TH + KH - 2) / SH + 1)
#define DY_TW ((TILE_W + KW - 2) / SW + 1)

// ceil(a / b) for b > 0 and a of either sign (C division truncates towards zero).
static inline int ceil_div_signed(const int a, const int b) {
    return a > 0 ? (a + b - 1) / b : -((-a) / b);
}

__kernel __attribute__((reqd_work_group_size(TW, TH, 1)))
void depthwise_forward(const int C, const int H, const int W, const int OH, const int OW,
                       __global const float* x, const ulong x_off,
                       __global const float* w, const ulong w_off,
                       __global const float* bias, const ulong bias_off, const int has_bias,
                       __global float* y, const ulong y_off) {
    __local float patch[IN_TH][IN_TW];
    const int lx = get_local_id(0), ly = get_local_id(1);
    // Dimension 0 holds the (n, c) planes times the tiles of a row: GPU grids allow only
    // 65,535 groups in dimensions 1 and 2, and N*C reaches 147,456 (EfficientNet-B0, batch 128).
    const int tiles_w = (OW + TILE_W - 1) / TILE_W;
    const uint g0 = (uint)get_group_id(0);
    const uint plane_index = g0 / (uint)tiles_w;             // n * C + c
    const int ow0 = (int)(g0 - plane_index * (uint)tiles_w) * TILE_W, oh0 = get_group_id(1) * TH;
    const ulong plane = plane_index;
    const int c = (int)(plane_index % (uint)C);
    const int ih0 = oh0 * SH - PH, iw0 = ow0 * SW - PW;
    __global const float* xp = x + x_off + plane * (ulong)H * (ulong)W;
    // Neighbouring items load neighbouring columns of each patch row.
    for (int i = ly * TW + lx; i < IN_TH * IN_TW; i += TH * TW) {
        const int r = i / IN_TW, q = i - r * IN_TW;
        const int ih = ih0 + r, iw = iw0 + q;
        // Padding is stored as 0 so the tap loop below needs no bounds checks.
        patch[r][q] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? xp[(ulong)ih * (ulong)W + (ulong)iw] : 0.0f;
    }
    // The filter in registers, read once per item.
    __global const float* wc = w + w_off + (ulong)c * KK;
    float wk[KK];
    #pragma unroll
    for (int k = 0; k < KK; ++k) wk[k] = wc[k];
    barrier(CLK_LOCAL_MEM_FENCE);
    const int oh = oh0 + ly, owi = ow0 + lx * OPX;
    if (oh >= OH || owi >= OW) return;                       // after the only barrier
    float acc[OPX];
    #pragma unroll
    for (int t = 0; t < OPX; ++t) acc[t] = has_bias ? bias[bias_off + c] : 0.0f;
    #pragma unroll
    for (int kh = 0; kh < KH; ++kh) {
        // The row segment this item's outputs read, then the window slid along it.
        float row[SPAN];
        #pragma unroll
        for (int q = 0; q < SPAN; ++q) row[q] = patch[ly * SH + kh][lx * OPX * SW + q];
        #pragma unroll
        for (int t = 0; t < OPX; ++t) {
            #pragma unroll
            for (int kw = 0; kw < KW; ++kw) acc[t] = mad(row[t * SW + kw], wk[kh * KW + kw], acc[t]);
        }
    }
    __global float* yr = y + y_off + (plane * (ulong)OH + (ulong)oh) * (ulong)OW;
    #pragma unroll
    for (int t = 0; t < OPX; ++t) {
        if (owi + t < OW) yr[owi + t] = acc[t];
    }
}

__kernel __attribute__((reqd_work_group_size(TW, TH, 1)))
void depthwise_backward_data(const int C, const int H, const int W, const int OH, const int OW,
                             __global const float* dy, const ulong dy_off,
                             __global const float* w, const ulong w_off,
                             __global float* dx, const ulong dx_off) {
    __local float patch[DY_TH][DY_TW];
    const int lx = get_local_id(0), ly = get_local_id(1);
    // Planes folded into dimension 0, as in depthwise_forward.
    const int tiles_w = (W + TILE_W - 1) / TILE_W;
    const uint g0 = (uint)get_group_id(0);
    const uint plane_index = g0 / (uint)tiles_w;             // n * C + c
    const int iw0 = (int)(g0 - plane_index * (uint)tiles_w) * TILE_W, ih0 = get_group_id(1) * TH;
    const ulong plane = plane_index;
    const int c = (int)(plane_index % (uint)C);
    // The first dy row and column any pixel of this tile reads (see DY_TH).
    const int oh_lo = ceil_div_signed(ih0 + PH - KH + 1, SH);
    const int ow_lo = ceil_div_signed(iw0 + PW - KW + 1, SW);
    __global const float* dyp = dy + dy_off + plane * (ulong)OH * (ulong)OW;
    for (int i = ly * TW + lx; i < DY_TH * DY_TW; i += TH * TW) {
        const int r = i / DY_TW, q = i - r * DY_TW;
        const int oh = oh_lo + r, ow = ow_lo + q;
        patch[r][q] = (oh >= 0 && oh < OH && ow >= 0 && ow < OW) ? dyp[(ulong)oh * (ulong)OW + (ulong)ow] : 0.0f;
    }
    __global const float* wc = w + w_off + (ulong)c * KK;
#if SH == 1 && SW == 1
    // Stride 1: every tap reaches every pixel, the tap loops below have constant bounds and
    // unroll, and the filter stays in registers.
    float wk[KK];
    #pragma unroll
    for (int k = 0; k < KK; ++k) wk[k] = wc[k];
#else
    // Strided: the tap loops start at the pixel's phase, a run-time index into the filter; a
    // private array indexed at run time lives on the stack (NVPTX: 104 bytes at 5x5), so the
    // filter is staged in local memory, read as a broadcast.
    __local float wk[KK];
    for (int k = ly * TW + lx; k < KK; k += TH * TW) wk[k] = wc[k];
#endif
    barrier(CLK_LOCAL_MEM_FENCE);
    const int ih = ih0 + ly, iw0i = iw0 + lx * OPX;
    if (ih >= H || iw0i >= W) return;                        // after the only barrier
    __global float* dxr = dx + dx_off + (plane * (ulong)H + (ulong)ih) * (ulong)W;
    #pragma unroll
    for (int t = 0; t < OPX; ++t) {
        const int iw = iw0i + t;
        if (iw >= W) break;
        float acc = 0.0f;
        // Tap kh reaches row ih from output row oh = (ih + PH - kh) / SH only when that division
        // is exact, i.e. kh ≡ (ih + PH) mod SH: start there and step by SH instead of testing
        // each tap. The quotient may be negative (a padding row); the patch holds 0 there.
        for (int kh = (ih + PH) % SH; kh < KH; kh += SH) {
            const int r = (ih + PH - kh) / SH - oh_lo;
            for (int kw = (iw + PW) % SW; kw < KW; kw += SW) {
                const int q = (iw + PW - kw) / SW - ow_lo;
                acc = mad(patch[r][q], wk[kh * KW + kw], acc);
            }
        }
        dxr[iw] = acc;
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void depthwise_backward_weight(const int N, const int C, const int H, const int W, const int OH, const int OW,
                               __global const float* dy, const ulong dy_off,
                               __global const float* x, const ulong x_off,
                               __global float* partial, const ulong partial_off) {
    __local float sums[KK][WG];
    const int lid = get_local_id(0);
    const int split = get_group_id(0), splits = get_num_groups(0);
    const int c = get_group_id(1);
    float acc[KK];
    #pragma unroll
    for (int t = 0; t < KK; ++t) acc[t] = 0.0f;
    // 32-bit position math (the host keeps N*OH*OW under 2^31): one 32-bit division per position
    // instead of a 64-bit one.
    const uint P = (uint)OH * (uint)OW;
    const uint count = (uint)N * P;
    // Positions j = (n, oh, ow) are dealt round-robin to all items of all splits of this channel,
    // so neighbouring items read neighbouring dy and x elements.
    for (uint j = (uint)split * WG + (uint)lid; j < count; j += (uint)splits * WG) {
        const uint n = j / P;
        const int p = (int)(j - n * P);
        const int oh = p / OW, ow = p - oh * OW;
        const ulong plane = (ulong)n * (ulong)C + (ulong)c;
        const float g = dy[dy_off + plane * (ulong)P + (ulong)p];
        __global const float* xp = x + x_off + plane * (ulong)H * (ulong)W;
        #pragma unroll
        for (int kh = 0; kh < KH; ++kh) {
            const int ih = oh * SH - PH + kh;
            if (ih < 0 || ih >= H) continue;
            #pragma unroll
            for (int kw = 0; kw < KW; ++kw) {
                const int iw = ow * SW - PW + kw;
                if (iw < 0 || iw >= W) continue;
                acc[kh * KW + kw] += g * xp[(ulong)ih * (ulong)W + (ulong)iw];
            }
        }
    }
    #pragma unroll
    for (int t = 0; t < KK; ++t) sums[t][lid] = acc[t];
    tree_sum_rows(&sums[0][0], lid, WG, KK);
    if (lid < KK) partial[partial_off + ((ulong)c * (ulong)splits + (ulong)split) * KK + (ulong)lid] = sums[lid][0];
}

__kernel void depthwise_backward_weight_reduce(const int total, const int splits,
                                               __global const float* partial, const ulong partial_off,
                                               __global float* dw, const ulong dw_off) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const int c = i / KK, t = i - c * KK;
    __global const float* src = partial + partial_off + (ulong)c * (ulong)splits * KK + (ulong)t;
    float acc = 0.0f;
    for (int s = 0; s < splits; ++s) acc += src[(ulong)s * KK];
    dw[dw_off + (ulong)i] = acc;
}

// =================================================================================================
// grouped.cl — grouped 2-D convolution with few channels per group (ResNeXt's cardinality-32
// 3x3 convolutions: 4 to 16 channels per group; the RegNet cell's 1x1 convolution with N groups
// of 2 channels, compiled with KH = KW = 1, PH = PW = 0), forward and both gradients, computed directly:
// no im2col, no GEMM (per-group GEMMs that small leave a GEMM library nothing to tile).
//
// Kernels:
//   grouped_forward                 y[n, o, oh, ow] = bias[o] + sum over ci < CG, kh, kw of
//                                     w[o, ci, kh, kw] * x[n, g*CG + ci, oh*SH - PH + kh, ow*SW - PW + kw]
//                                   with g = o / OG. One work-group computes a TW x TH output tile
//                                   for OB output channels of one group of one sample (each item one
//                                   pixel, OB accumulators), staging CT input channels' patches and
//                                   their weights in local memory per pass.
//                                   Global size [ceil(OW/TW)*TW * N*G*ceil(OG/OB), OH]: the
//                                   (n, g, block) index rides in dimension 0 beside the row tiles.
//   grouped_backward_data           dx[n, g*CG + ci, ih, iw] = sum over o < OG and the taps with
//                                     oh*SH - PH + kh = ih, ow*SW - PW + kw = iw of
//                                     dy[n, g*OG + o, oh, ow] * w[g*OG + o, ci, kh, kw]
//                                   (gather form, no atomics). One work-group computes a TW x TH dx
//                                   tile for CB input channels of one group of one sample, staging
//                                   CT output channels' dy patches and weights per pass; writes every
//                                   dx entry. Global size [ceil(W/TW)*TW * N*G*ceil(CG/CB), H].
//   grouped_backward_weight         partial[o, ci, s, kh, kw] = sum over the positions (n, oh, ow)
//                                     given to split s of dy[n, o, oh, ow] * x[n, g*CG + ci, ih, iw]
//                                   One work-group of WG items per (split, output channel, block of
//                                   CB input channels): global size [splits*WG, O*ceil(CG/CB)];
//                                   CB*KH*KW private sums per item, then a work-group tree
//                                   reduction (reduce.h's tree_sum_rows); no atomics.
//   grouped_backward_weight_reduce  dw[o, ci, kh, kw] = sum over s of partial[o, ci, s, kh, kw]
//                                   (1-D range over dw, fixed summation order: deterministic)
//
// Macros:
//   KH, KW   kernel height and width (default 3x3)
//   SH, SW   stride (default 1)
//   PH, PW   padding (default 1)
//   TH, TW   output (dx) tile of one work-group; the work-group is TW x TH x 1 (default 8x8)
//   OB       output channels per work-item in grouped_forward (default 4)
//   CB       input channels per work-item in the backward kernels (default 4)
//   CT       channels staged in local memory per pass (default 4)
//   WG       work-group size of grouped_backward_weight: a power of two >= CB*KH*KW (default 64)
// Dilation is 1. Channel counts (CG, OG) are runtime arguments; blocks that run past them are
// padded with zero weights, so the unrolled loops need no channel checks.
//
// Layout: x, y, dy, dx are NCHW and contiguous; w and dw are [O, CG, KH, KW]. Every buffer is
// (pointer, ulong offset in elements); plane and linear indices are ulong, in-plane coordinates
// int. Work-items past the image edge still load their share of each pass and reach every
// barrier; they only skip the final store.
// =================================================================================================

#include "window.h"
#include "reduce.h"
#ifndef PH
#define PH 1
#endif
#ifndef PW
#define PW 1
#endif
#ifndef TH
#define TH 8
#endif
#ifndef TW
#define TW 8
#endif
#ifndef OB
#define OB 4
#endif
#ifndef CB
#define CB 4
#endif
#ifndef CT
#define CT 4
#endif
#ifndef WG
#define WG 64
#endif

#define KK (KH * KW)
#define TILE (TH * TW)
#if CB * KK > WG
#error "WG must be at least CB*KH*KW: the reduction's first CB*KH*KW items write the tap sums"
#endif

// Input patch of one forward tile (see depthwise.cl).
#define IN_TH ((TH - 1) * SH + KH)
#define IN_TW ((TW - 1) * SW + KW)
// dy patch of one backward-data tile: at most floor((TH + KH - 2) / SH) + 1 output rows read a
// TH-row input tile, whatever its alignment (see depthwise.cl).
#define DY_TH ((TH + KH - 2) / SH + 1)
#define DY_TW ((TW + KW - 2) / SW + 1)

// ceil(a / b) for b > 0 and a of either sign (C division truncates towards zero).
static inline int ceil_div_signed(const int a, const int b) {
    return a > 0 ? (a + b - 1) / b : -((-a) / b);
}

__kernel __attribute__((reqd_work_group_size(TW, TH, 1)))
void grouped_forward(const int C, const int H, const int W, const int O, const int OH, const int OW,
                     const int G, const int CG, const int OG, const int oblocks,
                     __global const float* x, const ulong x_off,
                     __global const float* w, const ulong w_off,
                     __global const float* bias, const ulong bias_off, const int has_bias,
                     __global float* y, const ulong y_off) {
    __local float patch[CT][IN_TH][IN_TW];
    __local float wl[CT][OB][KK];
    const int lx = get_local_id(0), ly = get_local_id(1), lid = ly * TW + lx;
    // Dimension 0 holds z = (n * G + g) * oblocks + block times the tiles of a row: GPU grids
    // allow only 65,535 groups in dimensions 1 and 2, and z reaches 65,536 (RegNet-50, batch 128).
    const uint tiles_w = (uint)((OW + TW - 1) / TW);
    const uint g0 = (uint)get_group_id(0);
    uint z = g0 / tiles_w;
    const int ow0 = (int)(g0 - z * tiles_w) * TW, oh0 = get_group_id(1) * TH;
    const int o0 = (int)(z % (uint)oblocks) * OB;            // first output channel within the group
    z /= (uint)oblocks;
    const int g = (int)(z % (uint)G);
    const ulong n = z / (uint)G;
    const int ih0 = oh0 * SH - PH, iw0 = ow0 * SW - PW;
    float acc[OB];
    #pragma unroll
    for (int b = 0; b < OB; ++b) acc[b] = 0.0f;
    for (int c0 = 0; c0 < CG; c0 += CT) {
        for (int i = lid; i < CT * IN_TH * IN_TW; i += TILE) {
            const int ct = i / (IN_TH * IN_TW);
            const int rq = i - ct * (IN_TH * IN_TW);
            const int r = rq / IN_TW, q = rq - r * IN_TW;
            const int ci = c0 + ct, ih = ih0 + r, iw = iw0 + q;
            // Padding, and channels past the group, are stored as 0.
            patch[ct][r][q] = (ci < CG && ih >= 0 && ih < H && iw >= 0 && iw < W)
                ? x[x_off + ((n * (ulong)C + (ulong)(g * CG + ci)) * (ulong)H + (ulong)ih) * (ulong)W + (ulong)iw]
                : 0.0f;
        }
        for (int i = lid; i < CT * OB * KK; i += TILE) {
            const int ct = i / (OB * KK);
            const int bt = i - ct * (OB * KK);
            const int b = bt / KK, t = bt - b * KK;
            const int ci = c0 + ct, o = o0 + b;
            wl[ct][b][t] = (ci < CG && o < OG)
                ? w[w_off + ((ulong)(g * OG + o) * (ulong)CG + (ulong)ci) * KK + (ulong)t] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        #pragma unroll
        for (int ct = 0; ct < CT; ++ct) {
            #pragma unroll
            for (int kh = 0; kh < KH; ++kh) {
                #pragma unroll
                for (int kw = 0; kw < KW; ++kw) {
                    const float v = patch[ct][ly * SH + kh][lx * SW + kw];
                    #pragma unroll
                    for (int b = 0; b < OB; ++b) acc[b] += v * wl[ct][b][kh * KW + kw];
                }
            }
        }
        // The next pass overwrites the patch and the weights.
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const int oh = oh0 + ly, ow = ow0 + lx;
    if (oh >= OH || ow >= OW) return;                        // after the last barrier
    #pragma unroll
    for (int b = 0; b < OB; ++b) {
        const int o = o0 + b;
        if (o < OG) {
            const int oc = g * OG + o;
            const float v = has_bias ? acc[b] + bias[bias_off + oc] : acc[b];
            y[y_off + ((n * (ulong)O + (ulong)oc) * (ulong)OH + (ulong)oh) * (ulong)OW + (ulong)ow] = v;
        }
    }
}

__kernel __attribute__((reqd_work_group_size(TW, TH, 1)))
void grouped_backward_data(const int C, const int H, const int W, const int O, const int OH, const int OW,
                           const int G, const int CG, const int OG, const int cblocks,
                           __global const float* dy, const ulong dy_off,
                           __global const float* w, const ulong w_off,
                           __global float* dx, const ulong dx_off) {
    __local float patch[CT][DY_TH][DY_TW];
    __local float wl[CT][CB][KK];
    const int lx = get_local_id(0), ly = get_local_id(1), lid = ly * TW + lx;
    // z = (n * G + g) * cblocks + block folded into dimension 0, as in grouped_forward.
    const uint tiles_w = (uint)((W + TW - 1) / TW);
    const uint g0 = (uint)get_group_id(0);
    uint z = g0 / tiles_w;
    const int iw0 = (int)(g0 - z * tiles_w) * TW, ih0 = get_group_id(1) * TH;
    const int c0 = (int)(z % (uint)cblocks) * CB;            // first input channel within the group
    z /= (uint)cblocks;
    const int g = (int)(z % (uint)G);
    const ulong n = z / (uint)G;
    // The first dy row and column any pixel of this tile reads (see DY_TH).
    const int oh_lo = ceil_div_signed(ih0 + PH - KH + 1, SH);
    const int ow_lo = ceil_div_signed(iw0 + PW - KW + 1, SW);
    const int ih = ih0 + ly, iw = iw0 + lx;
    // Tap kh reaches row ih from output row (ih + PH - kh) / SH only when that division is exact:
    // kh ≡ (ih + PH) mod SH (see depthwise.cl).
    const int kh_first = (ih + PH) % SH, kw_first = (iw + PW) % SW;
    float acc[CB];
    #pragma unroll
    for (int b = 0; b < CB; ++b) acc[b] = 0.0f;
    for (int o0 = 0; o0 < OG; o0 += CT) {
        for (int i = lid; i < CT * DY_TH * DY_TW; i += TILE) {
            const int ot = i / (DY_TH * DY_TW);
            const int rq = i - ot * (DY_TH * DY_TW);
            const int r = rq / DY_TW, q = rq - r * DY_TW;
            const int o = o0 + ot, oh = oh_lo + r, ow = ow_lo + q;
            patch[ot][r][q] = (o < OG && oh >= 0 && oh < OH && ow >= 0 && ow < OW)
                ? dy[dy_off + ((n * (ulong)O + (ulong)(g * OG + o)) * (ulong)OH + (ulong)oh) * (ulong)OW + (ulong)ow]
                : 0.0f;
        }
        for (int i = lid; i < CT * CB * KK; i += TILE) {
            const int ot = i / (CB * KK);
            const int bt = i - ot * (CB * KK);
            const int b = bt / KK, t = bt - b * KK;
            const int o = o0 + ot, ci = c0 + b;
            wl[ot][b][t] = (o < OG && ci < CG)
                ? w[w_off + ((ulong)(g * OG + o) * (ulong)CG + (ulong)ci) * KK + (ulong)t] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        #pragma unroll
        for (int ot = 0; ot < CT; ++ot) {
            for (int kh = kh_first; kh < KH; kh += SH) {
                const int r = (ih + PH - kh) / SH - oh_lo;
                for (int kw = kw_first; kw < KW; kw += SW) {
                    const float v = patch[ot][r][(iw + PW - kw) / SW - ow_lo];
                    #pragma unroll
                    for (int b = 0; b < CB; ++b) acc[b] += v * wl[ot][b][kh * KW + kw];
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (ih >= H || iw >= W) return;                          // after the last barrier
    #pragma unroll
    for (int b = 0; b < CB; ++b) {
        const int ci = c0 + b;
        if (ci < CG) {
            dx[dx_off + ((n * (ulong)C + (ulong)(g * CG + ci)) * (ulong)H + (ulong)ih) * (ulong)W + (ulong)iw] = acc[b];
        }
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void grouped_backward_weight(const int N, const int C, const int H, const int W, const int O,
                             const int OH, const int OW, const int CG, const int OG, const int cblocks,
                             __global const float* dy, const ulong dy_off,
                             __global const float* x, const ulong x_off,
                             __global float* partial, const ulong partial_off) {
    __local float sums[CB * KK][WG];
    const int lid = get_local_id(0);
    const int split = get_group_id(0), splits = get_num_groups(0);
    const int row = get_group_id(1);                         // o * cblocks + block
    const int o = row / cblocks;
    const int c0 = (row - o * cblocks) * CB;                 // first input channel within the group
    const int g = o / OG;
    float acc[CB][KK];
    #pragma unroll
    for (int b = 0; b < CB; ++b) {
        #pragma unroll
        for (int t = 0; t < KK; ++t) acc[b][t] = 0.0f;
    }
    const ulong P = (ulong)OH * (ulong)OW;
    const ulong HW = (ulong)H * (ulong)W;
    const ulong count = (ulong)N * P;
    for (ulong j = (ulong)split * WG + (ulong)lid; j < count; j += (ulong)splits * WG) {
        const ulong n = j / P;
        const int p = (int)(j - n * P);
        const int oh = p / OW, ow = p - oh * OW;
        const float gv = dy[dy_off + (n * (ulong)O + (ulong)o) * P + (ulong)p];
        __global const float* xp = x + x_off + (n * (ulong)C + (ulong)(g * CG + c0)) * HW;
        // A guard, not a `break`: an early exit keeps the channel loop rolled, its run-time index
        // puts acc on the stack (NVPTX: 144 bytes at CB = 4, 3x3).
        #pragma unroll
        for (int b = 0; b < CB; ++b) {
            if (c0 + b < CG) {
                #pragma unroll
                for (int kh = 0; kh < KH; ++kh) {
                    const int ih = oh * SH - PH + kh;
                    if (ih < 0 || ih >= H) continue;
                    #pragma unroll
                    for (int kw = 0; kw < KW; ++kw) {
                        const int iw = ow * SW - PW + kw;
                        if (iw < 0 || iw >= W) continue;
                        acc[b][kh * KW + kw] += gv * xp[(ulong)b * HW + (ulong)ih * (ulong)W + (ulong)iw];
                    }
                }
            }
        }
    }
    #pragma unroll
    for (int b = 0; b < CB; ++b) {
        #pragma unroll
        for (int t = 0; t < KK; ++t) sums[b * KK + t][lid] = acc[b][t];
    }
    tree_sum_rows(&sums[0][0], lid, WG, CB * KK);
    if (lid < CB * KK) {
        const int b = lid / KK, t = lid - b * KK;
        const int ci = c0 + b;
        if (ci < CG) {
            partial[partial_off + (((ulong)o * (ulong)CG + (ulong)ci) * (ulong)splits + (ulong)split) * KK + (ulong)t] =
                sums[lid][0];
        }
    }
}

__kernel void grouped_backward_weight_reduce(const int total, const int splits,
                                             __global const float* partial, const ulong partial_off,
                                             __global float* dw, const ulong dw_off) {
    const int i = get_global_id(0);
    if (i >= total) return;
    const int row = i / KK, t = i - row * KK;                // row = o * CG + ci
    __global const float* src = partial + partial_off + (ulong)row * (ulong)splits * KK + (ulong)t;
    float acc = 0.0f;
    for (int s = 0; s < splits; ++s) acc += src[(ulong)s * KK];
    dw[dw_off + (ulong)i] = acc;
}

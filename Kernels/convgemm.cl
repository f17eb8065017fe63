// =================================================================================================
// convgemm.cl — implicit-GEMM 2-D convolution over NCHW tensors: the convolution as a GEMM whose
// operands are gathered from the tensors on the fly (no column buffer, no transpose back).
//
// Kernels: (G groups; CG = C/G and OG = O/G channels per group; KK = KH*KW taps; P = OH*OW)
//   convgemm_forward          y[n, g*OG+m, p] = sum_k w[g*OG+m, k] * x~[k, (n, p)] (+ bias[g*OG+m])
//                             GEMM M = OG, N = N*P, K = CG*KK; x~[(c, kh, kw), (n, oh, ow)] is the
//                             input pixel that tap reads (0 in the padding).
//                             Range: (ceil(N*P/TN)*RN, ceil(OG/TM)*RM, G), local (RN, RM, 1).
//   convgemm_backward_data    dx[n, g*CG+m, q] = sum_k w~[m, k] * dy~[k, (n, q)], q = ih*W + iw,
//                             k = (o, kh, kw); dy~ is the output pixel that read (ih, iw) through
//                             the tap (0 where none did, e.g. between stride-2 outputs).
//                             GEMM M = CG, N = N*H*W, K = OG*KK. Writes every dx entry.
//                             Range: (ceil(N*H*W/TN)*RN, ceil(CG/TM)*RM, G).
//   convgemm_backward_weight  partial[s, g*OG+m, k] = sum over r in split s of dy[(n, p) = r, g*OG+m]
//                             * x~[k, r]; GEMM M = OG, N = CG*KK, reduced over r < N*P in S splits
//                             of `chunk` positions (a multiple of TK).
//                             Range: (ceil(CG*KK/TN)*RN, ceil(OG/TM)*RM, G*S).
//   convgemm_forward_direct, convgemm_backward_data_direct, convgemm_backward_weight_direct
//                             (DIRECT = 1) the same three GEMMs without local memory or barriers
//                             for CPU devices (see the comment above them): items along the
//                             columns, LX per group, each WM rows x WN columns LX apart. Ranges:
//                             forward (ceil(N*P/(LX*WN))*LX, ceil(OG/WM), G); data
//                             (ceil(N*H*W/(LX*WN))*LX, ceil(CG/WM), G); weight (S*LX, ceil(OG/WM),
//                             G*ceil(CG*KK/WN)), its items along the reduction, one work-group tree
//                             reduction (fixed order, reduce.h's tree_sum_rows) per split.
//   convgemm_pad_planes, convgemm_pad_planes2, convgemm_forward_vector,
//   convgemm_backward_data_vector, convgemm_backward_weight_vector
//                             (VECTOR = 1) the row-padded explicit-vector kernels for CPU devices, any
//                             geometry (see the comment above them). pad_planes copies planes into a
//                             zero-bordered, stride-phase-split layout (pad_planes2: two tensors in
//                             one launch); forward_vector computes 16
//                             columns of the output grid per float16; backward_data_vector one stride
//                             phase of dx from the padded dy; backward_weight_vector reduces the
//                             padded dy against the padded x in float16 lanes, one partial per
//                             sample split.
//   convgemm_reduce           dw[i] = sum over s = 0..S-1 of partial[s, i], in that order: the split-K
//                             weight gradient is deterministic (no float atomics).
//                             Range: (count), local (RW).
//
// Macros: (all integers; the host checks the constraints below before it builds a program)
//   TM, TN   work-group tile: rows (output channels) x columns (pixels, or weight columns)
//   WM, WN   outputs per work-item along rows and columns (register block); RM = TM/WM and
//            RN = TN/WN items per group. Item (tx, ty) owns rows ty + i*RM, columns tx + j*RN:
//            neighbouring items read neighbouring local-memory words, which POCL turns into
//            vector loads when it vectorises across dimension 0, and GPUs read without conflicts.
//   TK       K-tile staged in local memory per step, double-buffered (As[2][TK][TM+LPAD] +
//            Bs[2][TK][TN+LPAD] floats, LPAD words of padding per row against bank conflicts: 1 in
//            the FP32 form, 8 in the tensor-core form; gemm_tile.h).
//   KH, KW   kernel size (compile-time, so tap decoding is multiplication).
//   SH, SW   strides (compile-time, likewise).
//   RW       work-group size of convgemm_reduce (default 64).
//   DIRECT   1: compile the barrier-free kernels instead of the tiled ones (one program holds
//            one form); LX their work-group size, a power of two <= 256; WM, WN as above
//            (TM, TN, TK unused). Local memory: the weight gradient's 4*WM*WN*LX bytes.
//   EPI      the forward kernels' epilogue after the bias: EPI_NONE (default), EPI_RELU (y =
//            max(z, 0)) or EPI_SILU (y = z * sigmoid(z), and the pre-activation z also written to
//            `pre`, which the gradient needs): store_output below.
//   STATS    1: forward_vector also writes, per output channel and per 16-lane vector of the
//            grid, the (count, mean, M2) of the outputs it stored to `stats` ([O, chunks, 3],
//            chunks = N*blocks*WN), the partials batch norm's statistics merge, so that a batch
//            norm after the convolution does not read its output again (EPI_NONE only).
//   MMA      1: the tiled kernels' tensor-core form: TF32 m16n8k8 products (mma.h) with FP32
//            accumulation, operands rounded to TF32 (cvt.rna) as they are staged. WM x WN are then
//            warps of 32 items (local size (32*WN, WM)), each a (TM/WM) x (TN/WN) warp tile, a
//            multiple of 16 x 8; TK a multiple of 8. For NVIDIA devices of compute capability 8.0
//            or later, or with MMA_EMULATE = 1 for any device (mma.h: the conformance sweep).
//   VECTOR   1: compile the row-padded vector kernels; LX their work-group size; WM rows (output
//            channels) and WN float16 vectors of columns per item (forward), WM rows and WN weight
//            columns per item (weight gradient). No local memory.
//   LX       work-group size of the DIRECT and VECTOR kernels, a power of two <= 256.
//   MMA_EMULATE (mma.h) 1: the tensor-core form runs the portable emulation of the instruction
//            (any OpenCL device); 0 (default): the PTX.
// Constraints: WG = RM*RN <= 256 (the portable profile), WG % TN == 0 and WG % TK == 0 (each
// item loads a fixed column / fixed reduction offset), (TM*TK) % WG == 0, (TN*TK) % WG == 0,
// 8*TK*(TM+TN+2*LPAD) <= 48 KiB.
//
// Products accumulate with fma(), not mad(): POCL lowers mad to a multiply and an add (no
// contraction), half the arithmetic per cycle of vfmadd on a CPU; NVIDIA emits fma.rn for both.
// ConvolutionEngineTests.testVectorProductsAreFused checks the single rounding.
//
// Index math is 32-bit: the host refuses tensors of 2^31 elements or more. Runtime divisions that
// recur per K-tile use host-computed magic numbers (fdiv below); the rest divide once per item.
// =================================================================================================

#ifndef TM
#define TM 64
#endif
#ifndef TN
#define TN 64
#endif
#ifndef WM
#define WM 4
#endif
#ifndef WN
#define WN 4
#endif
#ifndef TK
#define TK 16
#endif
#include "window.h"
#include "reduce.h"
#ifndef RW
#define RW 64
#endif
#ifndef DIRECT
#define DIRECT 0
#endif
#ifndef LX
#define LX 64
#endif
#ifndef VECTOR
#define VECTOR 0
#endif
#ifndef STATS
#define STATS 0
#endif
#define EPI_NONE 0
#define EPI_RELU 1
#define EPI_SILU 2
#ifndef EPI
#define EPI EPI_NONE
#endif

// The forward kernels' one store: output element i (relative to the views) from its value z
// (bias included), through the fused activation, so that a convolution followed by ReLU or
// SiLU needs no second pass over its output.
static inline void store_output(__global float* y, const ulong y_off, __global float* pre, const ulong pre_off,
                         const ulong i, const float z) {
#if EPI == EPI_SILU
    pre[pre_off + i] = z;
    y[y_off + i] = z / (1.0f + exp(-z));
#elif EPI == EPI_RELU
    y[y_off + i] = fmax(z, 0.0f);
#else
    y[y_off + i] = z;
#endif
}

#ifndef MMA
#define MMA 0
#endif
// MMA = 1, the tensor-core form: WM x WN warps, each a (TM/WM) x (TN/WN) warp tile of m16n8k8
// products, operands rounded to TF32 as they are staged; accumulators, fragments and products as
// gemm_tile.h lays them out (shared with matmul.cl's batched GEMM). The double-buffered K loop is
// gemm_tile.h's too.
#include "gemm_tile.h"
#if !MMA
// The FP32 form: item (tx, ty) owns rows ty + i*RM and columns tx + j*RN.
#define RM (TM / WM)
#define RN (TN / WN)
#define ACC_M WM
#define ACC_N WN
#define ACC_ROW(i) (ty + (i) * RM)
#define ACC_COL(j) (tx + (j) * RN)
#define STAGE(v) (v)
#define MMA_SETUP(tid, warps)
// One word of padding per staged row: the loads write a tile column by column (neighbouring
// items, neighbouring k), and rows TM or TN words apart (multiples of 32) would put all TK of them
// in one of the 32 banks of NVIDIA's local memory, a 16-way conflict per store.
#define LPAD 1

// The register-blocked product of the staged tiles: acc[i][j] += As[k][ty+i*RM] * Bs[k][tx+j*RN].
#define TILE_PRODUCT(As, Bs, acc, tx, ty)                                  \
    _Pragma("unroll")                                                      \
    for (int kk = 0; kk < TK; ++kk) {                                      \
        float a_[WM], b_[WN];                                              \
        _Pragma("unroll")                                                  \
        for (int i = 0; i < WM; ++i) a_[i] = As[kk][(ty) + i * RM];        \
        _Pragma("unroll")                                                  \
        for (int j = 0; j < WN; ++j) b_[j] = Bs[kk][(tx) + j * RN];        \
        _Pragma("unroll")                                                  \
        for (int i = 0; i < WM; ++i) {                                     \
            _Pragma("unroll")                                              \
            for (int j = 0; j < WN; ++j) acc[i][j] = fma(a_[i], b_[j], acc[i][j]); \
        }                                                                  \
    }
#endif
#define WG (RM * RN)
#define KK (KH * KW)
#define BSTEP (WG / TN)   // rows of a B tile one pass of the group loads
#define LOADS_A (TM * TK / WG)
#define LOADS_B (TN * TK / WG)

// n / d for 0 <= n < 2^31 with the host's (mul, shr) for d: mul = ceil(2^(31+l) / d),
// l = ceil(log2 d), shr = l - 1; mul = 0 means d = 1. One multiply-high, no division.
static inline int fdiv(const int n, const uint mul, const int shr) {
    return mul == 0u ? n : (int)(mul_hi((uint)n, mul) >> shr);
}

#if VECTOR

// The row-padded vector form (VECTOR = 1) for CPU devices. POCL's vectoriser across work-items
// turns a tap's reads into masked gathers (padding, row ends, strides); here each work-item computes
// whole float16 vectors itself, which LLVM maps to AVX-512 registers with plain unaligned loads:
// measured 3-5x the DIRECT kernels on ResNet-20's shapes.
//
// The input is first copied into a zero-bordered, phase-split layout (convgemm_pad_planes): padded
// row SH*i + ph and column SW*j + pw of plane (n, c) go to row i, column j of its phase plane
// (ph, pw), HQ x WQ = ceil(Hp/SH) x ceil(Wp/SW), phase planes XS = HQ*WQ apart and channel planes
// CS = SH*SW*XS apart. The output is computed on the grid q = oh*WQ + ow: tap (kh, kw) reads phase
// plane ((kh*DH) % SH, (kw*DW) % SW) at q + ((kh*DH) / SH)*WQ + (kw*DW) / SW, linear in q, so 16
// neighbouring outputs read 16 neighbouring inputs at any stride. The grid's columns ow >= OW are
// computed and dropped (WQ/OW - 1 of the work: 7% at 28x28, 29% at 7x7). Reads past a plane land
// in the next plane or in a zeroed slack after the last one and only reach dropped columns.
//
// The data gradient splits dx by stride phase instead (dx rows SH*i + rh, columns SW*j + rw): each
// phase is a stride-1 product of dy with the taps of that phase, so no tap multiplies the zeros
// a strided convolution's transpose would insert.

#define V 16

// Sum of the 16 lanes in a fixed tree order.
static inline float lane_sum(const float16 v) {
    const float8 a = v.lo + v.hi;
    const float4 b = a.lo + a.hi;
    const float2 c = b.lo + b.hi;
    return c.x + c.y;
}

// Zeros d[0, n), 16 at a time.
static inline void zero_span(__global float* d, const int n) {
    int t = 0;
    for (; t + V <= n; t += V) vstore16((float16)(0.0f), 0, d + t);
    for (; t < n; ++t) d[t] = 0.0f;
}

// dst plane p (stride DS) = src plane p [H, W] placed at (top, left) of a zero grid, split into
// sh x sw phase planes of HD x WD (phase plane stride PS = HD*WD): grid row sh*i + ph and column
// sw*j + pw go to row i, column j of phase (ph, pw). The plane's tail past sh*sw*PS, and `slack`
// values after the last plane, are zero. Negative top/left crop. One item per destination row R,
// copying with float16 moves where the phase is contiguous (sw = 1); an item per element made
// POCL gather (6x slower).
static inline void pad_row(const int R, const int planes, const int H, const int W, const int top, const int left,
                    const int sh, const int sw, const int HD, const int WD, const int DS, const int slack,
                    __global const float* src, __global float* dst) {
    const int phases = sh * sw;
    const int p = R / (phases * HD), rest = R - p * (phases * HD);
    const int phase = rest / HD, i = rest - phase * HD;
    const int ph = phase / sw, pw = phase - (phase / sw) * sw;
    __global float* plane = dst + (ulong)p * (ulong)DS;
    __global float* d = plane + (phase * HD + i) * WD;
    const int y = sh * i + ph - top;
    // Columns j whose source column x = sw*j + pw - left lies in [0, W) form [j0, j1).
    int j0 = 0, j1 = 0;
    if (y >= 0 && y < H) {
        // (Negative numerators: the clamps make C's truncating division harmless.)
        j0 = clamp((left - pw + sw - 1) / sw, 0, WD);
        const int last = W - 1 + left - pw;
        j1 = last < 0 ? 0 : min(last / sw + 1, WD);
        if (j1 < j0) j1 = j0;
    }
    zero_span(d, j0);
    __global const float* from = src + ((ulong)p * (ulong)H + (ulong)max(y, 0)) * (ulong)W;
    const int x0 = sw * j0 + pw - left, n = j1 - j0;
    if (sw == 1) {
        int t = 0;
        for (; t + V <= n; t += V) vstore16(vload16(0, from + x0 + t), 0, d + j0 + t);
        for (; t < n; ++t) d[j0 + t] = from[x0 + t];
    } else {
        for (int t = 0; t < n; ++t) d[j0 + t] = from[x0 + sw * t];
    }
    zero_span(d + j1, WD - j1);
    if (phase == phases - 1 && i == HD - 1) {
        zero_span(plane + phases * HD * WD, DS - phases * HD * WD);
        if (p == planes - 1) zero_span(plane + DS, slack);
    }
}

// One tensor padded as pad_row describes. Range: (ceil(planes*sh*sw*HD/64)*64).
__kernel __attribute__((reqd_work_group_size(64, 1, 1)))
void convgemm_pad_planes(const int planes, const int H, const int W, const int top, const int left,
                         const int sh, const int sw, const int HD, const int WD, const int DS, const int slack,
                         __global const float* src, const ulong src_off,
                         __global float* dst, const ulong dst_off) {
    const int R = get_global_id(0);
    if (R < planes * sh * sw * HD) pad_row(R, planes, H, W, top, left, sh, sw, HD, WD, DS, slack,
                                           src + src_off, dst + dst_off);
}

// Two tensors padded in one launch (the weight gradient's dy and x): rows [0, rows_a) are the
// first's, the rest the second's. Range: (ceil((rows_a + rows_b)/64)*64).
__kernel __attribute__((reqd_work_group_size(64, 1, 1)))
void convgemm_pad_planes2(const int planes_a, const int H_a, const int W_a, const int top_a, const int left_a,
                          const int sh_a, const int sw_a, const int HD_a, const int WD_a, const int DS_a,
                          const int slack_a, __global const float* src_a, const ulong src_a_off,
                          __global float* dst_a, const ulong dst_a_off,
                          const int planes_b, const int H_b, const int W_b, const int top_b, const int left_b,
                          const int sh_b, const int sw_b, const int HD_b, const int WD_b, const int DS_b,
                          const int slack_b, __global const float* src_b, const ulong src_b_off,
                          __global float* dst_b, const ulong dst_b_off) {
    const int R = get_global_id(0), rows_a = planes_a * sh_a * sw_a * HD_a;
    if (R < rows_a) {
        pad_row(R, planes_a, H_a, W_a, top_a, left_a, sh_a, sw_a, HD_a, WD_a, DS_a, slack_a,
                src_a + src_a_off, dst_a + dst_a_off);
    } else if (R - rows_a < planes_b * sh_b * sw_b * HD_b) {
        pad_row(R - rows_a, planes_b, H_b, W_b, top_b, left_b, sh_b, sw_b, HD_b, WD_b, DS_b, slack_b,
                src_b + src_b_off, dst_b + dst_b_off);
    }
}

// The offset of tap r = kh*KW + kw in a phase-split channel plane (above).
static inline int tap_offset(const int r, const int WQ, const int XS, const int DH, const int DW) {
    const int th = (r / KW) * DH, tw = (r % KW) * DW;
    return ((th % SH) * SW + tw % SW) * XS + (th / SH) * WQ + tw / SW;
}

// y[n, g*OG+m, oh, ow] = sum over (c, kh, kw) of w[g*OG+m, c, kh, kw] * x~ (the tap's pixel of the
// phase-split padded input xp, channel planes CS apart), on the grid q = oh*WQ + ow. Item: column
// block b of one (sample, group) — WN vectors of 16 columns from q0 = b*16*WN — by WM output
// channels. Range: (BP*N*G, ceil(OG/WM)), BP = ceil(blocks/LX)*LX, blocks = ceil(OH*WQ / (16*WN)):
// the (sample, group) pairs ride on dimension 0, which has no 65,535 limit (depthwise: G = C).
__kernel __attribute__((reqd_work_group_size(LX, 1, 1)))
void convgemm_forward_vector(const int C, const int O, const int G, const int OH, const int OW,
                             const int WQ, const int XS, const int CS, const int DH, const int DW,
                             const int blocks, const int BP,
                             __global const float* xp, const ulong xp_off,
                             __global const float* w, const ulong w_off,
                             __global const float* bias, const ulong bias_off, const int has_bias,
                             __global float* y, const ulong y_off, __global float* pre, const ulong pre_off,
                             __global float* stats, const ulong stats_off, const int chunks) {
    const int ng = get_global_id(0) / BP, blk = get_global_id(0) - (get_global_id(0) / BP) * BP;
    if (blk >= blocks) return;
    const int m0 = get_global_id(1) * WM;
    const int n = ng / G, g = ng - (ng / G) * G;
    const int CG = C / G, OG = O / G, K = CG * KK, P = OH * OW;
    const int q0 = blk * (V * WN);
    __global const float* xb = xp + xp_off + (ulong)(n * C + g * CG) * (ulong)CS + (ulong)q0;
    int toff[KK];
    _Pragma("unroll")
    for (int r = 0; r < KK; ++r) toff[r] = tap_offset(r, WQ, XS, DH, DW);
    // Rows past OG read the last row (valid memory) and are not stored.
    __global const float* wr[WM];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i) wr[i] = w + w_off + (ulong)(g * OG + min(m0 + i, OG - 1)) * (ulong)K;
    float16 acc[WM][WN];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i)
        _Pragma("unroll")
        for (int j = 0; j < WN; ++j) acc[i][j] = (float16)(0.0f);
    for (int c = 0; c < CG; ++c) {
        _Pragma("unroll")
        for (int r = 0; r < KK; ++r) {
            const int off = c * CS + toff[r], k = c * KK + r;
            float16 b[WN];
            _Pragma("unroll")
            for (int j = 0; j < WN; ++j) b[j] = vload16(0, xb + off + j * V);
            _Pragma("unroll")
            for (int i = 0; i < WM; ++i) {
                const float16 a = (float16)(wr[i][k]);
                _Pragma("unroll")
                for (int j = 0; j < WN; ++j) acc[i][j] = fma(a, b[j], acc[i][j]);
            }
        }
    }
    // Lanes on the grid's dropped columns (ow >= OW) or past its last row are not stored.
    _Pragma("unroll")
    for (int j = 0; j < WN; ++j) {
        const int qj = q0 + j * V;
        int oh = qj / WQ, ow = qj - (qj / WQ) * WQ;
        int at[V];   // the lane's output position, or -1 where it is dropped
        float keep[V];
        for (int l = 0; l < V; ++l) {
            at[l] = (oh < OH && ow < OW) ? oh * OW + ow : -1;
            keep[l] = at[l] < 0 ? 0.0f : 1.0f;
            if (++ow == WQ) { ow = 0; ++oh; }
        }
#if STATS
        const float16 mask = vload16(0, keep);
        const float count = lane_sum(mask);
#endif
        float lanes[WM][V];
        _Pragma("unroll")
        for (int i = 0; i < WM; ++i) vstore16(acc[i][j], 0, lanes[i]);
        _Pragma("unroll")
        for (int i = 0; i < WM; ++i) {
            const int m = m0 + i, o = g * OG + m;
            if (m >= OG) continue;
            const float b = has_bias ? bias[bias_off + o] : 0.0f;
            for (int l = 0; l < V; ++l) {
                if (at[l] >= 0) store_output(y, y_off, pre, pre_off, (ulong)(n * O + o) * (ulong)P + (ulong)at[l],
                                             lanes[i][l] + b);
            }
#if STATS
            // This vector's (count, mean, M2) of channel o over its kept lanes, for batch norm's
            // statistics (bn_stats_finalize merges the chunks with Chan's formula): chunk
            // n*blocks*WN + blk*WN + j of the channel's `chunks`.
            const float16 z = acc[i][j] + b;
            const float mean = count > 0.0f ? lane_sum(z * mask) / count : 0.0f;
            const float16 d = (z - mean) * mask;
            const float m2 = lane_sum(d * d);
            __global float* st = stats + stats_off
                + ((ulong)o * (ulong)chunks + (ulong)(n * blocks * WN + blk * WN + j)) * 3;
            st[0] = count;
            st[1] = mean;
            st[2] = m2;
#endif
        }
    }
}

// dx[n, g*CG+m, SH*i + rh, SW*j + rw] = sum over o and the taps (kh, kw) of phase (rh, rw) of
// w[g*OG+o, m, kh, kw] * dyp[n, g*OG+o, i + e + E, j + f + F], where rh + PH - kh*DH = SH*e (the taps
// whose output row is whole) and likewise f; dyp is dy placed at (E, F) of a zero HD x WD grid
// (plane stride DS). Item: WN vectors of 16 columns of the phase's grid q = i*WD + j by WM input
// channels. Range: (BP*N*G*SH*SW, ceil(CG/WM)), BP = ceil(blocks/LX)*LX, blocks =
// ceil(ceil(H/SH)*WD / (16*WN)).
__kernel __attribute__((reqd_work_group_size(LX, 1, 1)))
void convgemm_backward_data_vector(const int C, const int H, const int W, const int O, const int G,
                                   const int PH, const int PW, const int DH, const int DW,
                                   const int E, const int F, const int WD, const int DS, const int blocks,
                                   const int BP,
                                   __global const float* dyp, const ulong dyp_off,
                                   __global const float* w, const ulong w_off,
                                   __global float* dx, const ulong dx_off) {
    const int ngr = get_global_id(0) / BP, blk = get_global_id(0) - (get_global_id(0) / BP) * BP;
    if (blk >= blocks) return;
    const int m0 = get_global_id(1) * WM;
    const int phase = ngr % (SH * SW), ng = ngr / (SH * SW);
    const int rh = phase / SW, rw = phase - (phase / SW) * SW;
    const int n = ng / G, g = ng - (ng / G) * G;
    const int CG = C / G, OG = O / G;
    const int q0 = blk * (V * WN);
    // The phase's taps: their offsets in dyp and their index kh*KW + kw.
    int toff[KK], tk[KK], taps = 0;
    _Pragma("unroll")
    for (int r = 0; r < KK; ++r) {
        const int th = rh + PH - (r / KW) * DH, tw = rw + PW - (r % KW) * DW;
        // th, tw may be negative: test divisibility on a shifted non-negative value.
        if ((th + SH * (KH * DH + 1)) % SH == 0 && (tw + SW * (KW * DW + 1)) % SW == 0) {
            toff[taps] = (th / SH + E) * WD + tw / SW + F;
            tk[taps] = r;
            ++taps;
        }
    }
    __global const float* db = dyp + dyp_off + (ulong)(n * O + g * OG) * (ulong)DS + (ulong)q0;
    // w~[m, (o, tap)] = w[g*OG + o, m, tap]; rows past CG read the last row and are not stored.
    __global const float* wr[WM];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i) wr[i] = w + w_off + (ulong)(g * OG * CG + min(m0 + i, CG - 1)) * (ulong)KK;
    float16 acc[WM][WN];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i)
        _Pragma("unroll")
        for (int j = 0; j < WN; ++j) acc[i][j] = (float16)(0.0f);
    for (int o = 0; o < OG; ++o) {
        for (int t = 0; t < taps; ++t) {
            const int off = o * DS + toff[t], k = o * CG * KK + tk[t];
            float16 b[WN];
            _Pragma("unroll")
            for (int j = 0; j < WN; ++j) b[j] = vload16(0, db + off + j * V);
            _Pragma("unroll")
            for (int i = 0; i < WM; ++i) {
                const float16 a = (float16)(wr[i][k]);
                _Pragma("unroll")
                for (int j = 0; j < WN; ++j) acc[i][j] = fma(a, b[j], acc[i][j]);
            }
        }
    }
    // The phase's grid has rows i with SH*i + rh < H and columns j with SW*j + rw < W.
    const int HW = H * W;
    _Pragma("unroll")
    for (int j = 0; j < WN; ++j) {
        const int qj = q0 + j * V;
        int i = qj / WD, jj = qj - (qj / WD) * WD;
        float lanes[WM][V];
        _Pragma("unroll")
        for (int u = 0; u < WM; ++u) vstore16(acc[u][j], 0, lanes[u]);
        for (int l = 0; l < V; ++l) {
            const int ih = SH * i + rh, iw = SW * jj + rw;
            if (ih < H && iw < W) {
                _Pragma("unroll")
                for (int u = 0; u < WM; ++u) {
                    const int m = m0 + u;
                    if (m < CG) dx[dx_off + (ulong)(n * C + g * CG + m) * (ulong)HW + (ulong)(ih * W + iw)] = lanes[u][l];
                }
            }
            if (++jj == WD) { jj = 0; ++i; }
        }
    }
}

// partial[s, g*OG+m, k] = sum over samples n of split s and grid positions q < DY of
// dyp[n, g*OG+m, q] * x~[n, g*CG+c, tap r at q], k = c*KK + r: dyp is dy on the forward's grid
// (dropped columns and the plane's tail zero, plane stride DY, a multiple of 16), xp the forward's
// phase-split padded input. Item: WM output channels x WN weight columns, float16 lanes summed in
// a fixed order at the end. Range: (ceil(kblocks/LX)*LX, ceil(OG/WM), G*S), kblocks = ceil(K/WN).
__kernel __attribute__((reqd_work_group_size(LX, 1, 1)))
void convgemm_backward_weight_vector(const int N, const int C, const int O, const int G,
                                     const int WQ, const int XS, const int CS, const int DY,
                                     const int DH, const int DW, const int S, const int kblocks,
                                     __global const float* dyp, const ulong dyp_off,
                                     __global const float* xp, const ulong xp_off,
                                     __global float* partial, const ulong partial_off) {
    const int kb = get_global_id(0);
    if (kb >= kblocks) return;
    const int m0 = get_global_id(1) * WM;
    const int g = get_global_id(2) / S, s = get_global_id(2) - (get_global_id(2) / S) * S;
    const int CG = C / G, OG = O / G, K = CG * KK, k0 = kb * WN;
    const int chunk = (N + S - 1) / S, n0 = s * chunk, n1 = min(N, n0 + chunk);
    int off[WN], ro[WM];
    _Pragma("unroll")
    for (int j = 0; j < WN; ++j) {
        const int k = min(k0 + j, K - 1), c = k / KK;
        off[j] = c * CS + tap_offset(k - c * KK, WQ, XS, DH, DW);
    }
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i) ro[i] = (g * OG + min(m0 + i, OG - 1)) * DY;
    float16 acc[WM][WN];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i)
        _Pragma("unroll")
        for (int j = 0; j < WN; ++j) acc[i][j] = (float16)(0.0f);
    for (int n = n0; n < n1; ++n) {
        __global const float* db = dyp + dyp_off + (ulong)n * (ulong)O * (ulong)DY;
        __global const float* xb = xp + xp_off + (ulong)(n * C + g * CG) * (ulong)CS;
        for (int q = 0; q < DY; q += V) {
            float16 a[WM];
            _Pragma("unroll")
            for (int i = 0; i < WM; ++i) a[i] = vload16(0, db + ro[i] + q);
            _Pragma("unroll")
            for (int j = 0; j < WN; ++j) {
                const float16 b = vload16(0, xb + off[j] + q);
                _Pragma("unroll")
                for (int i = 0; i < WM; ++i) acc[i][j] = fma(a[i], b, acc[i][j]);
            }
        }
    }
    // Every (split, row, column) is written, zeros included (an empty split), so the scratch
    // needs no clearing.
    __global float* out = partial + partial_off + (ulong)s * (ulong)O * (ulong)K;
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i) {
        const int m = m0 + i;
        _Pragma("unroll")
        for (int j = 0; j < WN; ++j) {
            const int k = k0 + j;
            if (m < OG && k < K) out[(ulong)(g * OG + m) * (ulong)K + (ulong)k] = lane_sum(acc[i][j]);
        }
    }
}

#elif !DIRECT

__kernel __attribute__((reqd_work_group_size(RN, RM, 1)))
void convgemm_forward(const int N, const int C, const int H, const int W,
                      const int O, const int OH, const int OW, const int G,
                      const int PH, const int PW, const int DH, const int DW,
                      __global const float* x, const ulong x_off,
                      __global const float* w, const ulong w_off,
                      __global const float* bias, const ulong bias_off, const int has_bias,
                      __global float* y, const ulong y_off, __global float* pre, const ulong pre_off) {
    __local float As[2][TK][TM + LPAD];
    __local float Bs[2][TK][TN + LPAD];
    const int CG = C / G, OG = O / G, K = CG * KK, P = OH * OW, NP = N * P;
    const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * RN + tx;
    MMA_SETUP(tid, WG / 32)
    const int col0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM, g = get_group_id(2);

    // The B column this item loads is fixed for the whole reduction: decode it once.
    const int bcol = tid % TN, brow = tid / TN;
    const int col = col0 + bcol;
    const bool col_ok = col < NP;
    const int n = col_ok ? col / P : 0;
    const int p = col_ok ? col - n * P : 0;
    const int oh = p / OW, ow = p - (p / OW) * OW;
    const int ih0 = oh * SH - PH, iw0 = ow * SW - PW;
    __global const float* xb = x + x_off + (ulong)((n * C + g * CG) * H) * (ulong)W;
    __global const float* wb = w + w_off + (ulong)(g * OG) * (ulong)K;

    DECLARE_ACCUMULATORS(acc)
    STAGED_OPERANDS
#define FETCH(k0)                                                                                 \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_A; ++t) {                                                           \
        const int l = tid + t * WG, m = l / TK, k = l % TK;                                       \
        ra_[t] = (m0 + m < OG && (k0) + k < K) ? wb[(m0 + m) * K + (k0) + k] : 0.0f;              \
    }                                                                                             \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_B; ++t) {                                                           \
        const int kg = (k0) + brow + t * BSTEP;                                                   \
        const int c = kg / KK, r = kg - (kg / KK) * KK;                                           \
        const int ih = ih0 + (r / KW) * DH, iw = iw0 + (r % KW) * DW;                             \
        rb_[t] = (col_ok && kg < K && ih >= 0 && ih < H && iw >= 0 && iw < W)                     \
            ? xb[(c * H + ih) * W + iw] : 0.0f;                                                   \
    }
#define DEPOSIT(buf)                                                                              \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_A; ++t) {                                                           \
        const int l = tid + t * WG;                                                               \
        As[buf][l % TK][l / TK] = STAGE(ra_[t]);                                                  \
    }                                                                                             \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_B; ++t) Bs[buf][brow + t * BSTEP][bcol] = STAGE(rb_[t]);
    DOUBLE_BUFFERED_LOOP(k0, 0, K)
#undef FETCH
#undef DEPOSIT

    _Pragma("unroll")
    for (int j = 0; j < ACC_N; ++j) {
        const int cj = col0 + ACC_COL(j);
        if (cj >= NP) continue;
        const int nj = cj / P, pj = cj - (cj / P) * P;
        _Pragma("unroll")
        for (int i = 0; i < ACC_M; ++i) {
            const int m = m0 + ACC_ROW(i);
            if (m >= OG) continue;
            const int o = g * OG + m;
            store_output(y, y_off, pre, pre_off, (ulong)(nj * O + o) * (ulong)P + (ulong)pj,
                         acc[i][j] + (has_bias ? bias[bias_off + o] : 0.0f));
        }
    }
}

__kernel __attribute__((reqd_work_group_size(RN, RM, 1)))
void convgemm_backward_data(const int N, const int C, const int H, const int W,
                            const int O, const int OH, const int OW, const int G,
                            const int PH, const int PW, const int DH, const int DW,
                            __global const float* dy, const ulong dy_off,
                            __global const float* w, const ulong w_off,
                            __global float* dx, const ulong dx_off) {
    __local float As[2][TK][TM + LPAD];
    __local float Bs[2][TK][TN + LPAD];
    const int CG = C / G, OG = O / G, K = OG * KK, HW = H * W, NQ = N * HW, P = OH * OW;
    const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * RN + tx;
    MMA_SETUP(tid, WG / 32)
    const int col0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM, g = get_group_id(2);

    const int bcol = tid % TN, brow = tid / TN;
    const int col = col0 + bcol;
    const bool col_ok = col < NQ;
    const int n = col_ok ? col / HW : 0;
    const int q = col_ok ? col - n * HW : 0;
    const int ih = q / W, iw = q - (q / W) * W;
    // Output row oh reads input row ih through tap kh when oh*SH = ih + PH - kh*DH.
    const int th0 = ih + PH, tw0 = iw + PW;
    __global const float* dyb = dy + dy_off + (ulong)(n * O + g * OG) * (ulong)P;
    // w~[m, (o, r)] = w[g*OG + o, m, r]: the weight's [OG, CG, KK] block read as [CG, OG*KK].
    __global const float* wb = w + w_off + (ulong)(g * OG) * (ulong)(CG * KK);

    DECLARE_ACCUMULATORS(acc)
    STAGED_OPERANDS
#define FETCH(k0)                                                                                 \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_A; ++t) {                                                           \
        const int l = tid + t * WG, m = l / TK, kg = (k0) + l % TK;                               \
        const int o = kg / KK, r = kg - (kg / KK) * KK;                                           \
        ra_[t] = (m0 + m < CG && kg < K) ? wb[(o * CG + m0 + m) * KK + r] : 0.0f;                 \
    }                                                                                             \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_B; ++t) {                                                           \
        const int kg = (k0) + brow + t * BSTEP;                                                   \
        const int o = kg / KK, r = kg - (kg / KK) * KK;                                           \
        const int th = th0 - (r / KW) * DH, tw = tw0 - (r % KW) * DW;                             \
        const int oh = th / SH, ow = tw / SW;                                                     \
        const bool ok = col_ok && kg < K && th >= 0 && tw >= 0 && oh * SH == th && ow * SW == tw  \
            && oh < OH && ow < OW;                                                                \
        rb_[t] = ok ? dyb[(o * OH + oh) * OW + ow] : 0.0f;                                        \
    }
#define DEPOSIT(buf)                                                                              \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_A; ++t) {                                                           \
        const int l = tid + t * WG;                                                               \
        As[buf][l % TK][l / TK] = STAGE(ra_[t]);                                                  \
    }                                                                                             \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_B; ++t) Bs[buf][brow + t * BSTEP][bcol] = STAGE(rb_[t]);
    DOUBLE_BUFFERED_LOOP(k0, 0, K)
#undef FETCH
#undef DEPOSIT

    _Pragma("unroll")
    for (int j = 0; j < ACC_N; ++j) {
        const int cj = col0 + ACC_COL(j);
        if (cj >= NQ) continue;
        const int nj = cj / HW, qj = cj - (cj / HW) * HW;
        _Pragma("unroll")
        for (int i = 0; i < ACC_M; ++i) {
            const int m = m0 + ACC_ROW(i);
            if (m >= CG) continue;
            dx[dx_off + (ulong)(nj * C + g * CG + m) * (ulong)HW + (ulong)qj] = acc[i][j];
        }
    }
}

__kernel __attribute__((reqd_work_group_size(RN, RM, 1)))
void convgemm_backward_weight(const int N, const int C, const int H, const int W,
                              const int O, const int OH, const int OW, const int G,
                              const int PH, const int PW, const int DH, const int DW,
                              const int S, const int chunk,
                              const uint p_mul, const int p_shr, const uint ow_mul, const int ow_shr,
                              __global const float* dy, const ulong dy_off,
                              __global const float* x, const ulong x_off,
                              __global float* partial, const ulong partial_off) {
    __local float As[2][TK][TM + LPAD];
    __local float Bs[2][TK][TN + LPAD];
    const int CG = C / G, OG = O / G, K = CG * KK, P = OH * OW, R = N * P;
    const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * RN + tx;
    MMA_SETUP(tid, WG / 32)
    const int col0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM;
    const int g = get_group_id(2) / S, s = get_group_id(2) - (get_group_id(2) / S) * S;
    const int r_begin = s * chunk, r_end = min(R, r_begin + chunk);

    // Every load of this item is at reduction offset rr of the tile (WG % TK == 0).
    const int rr = tid % TK, lrow = tid / TK;
    #define LSTEP (WG / TK)
    // The weight columns this item loads are fixed: their tap offsets are decoded once.
    int xoff[LOADS_B], dh[LOADS_B], dw[LOADS_B];
    bool kok[LOADS_B];
    _Pragma("unroll")
    for (int t = 0; t < LOADS_B; ++t) {
        const int kc = col0 + lrow + t * LSTEP;
        const int c = kc / KK, r = kc - (kc / KK) * KK;
        kok[t] = kc < K;
        xoff[t] = (g * CG + c) * H * W;
        dh[t] = (r / KW) * DH - PH;
        dw[t] = (r % KW) * DW - PW;
    }

    DECLARE_ACCUMULATORS(acc)
    STAGED_OPERANDS
#define FETCH(r0)                                                                                 \
    {                                                                                             \
        const int r = (r0) + rr;                                                                  \
        const bool r_ok = r < r_end;                                                              \
        const int n = fdiv(r, p_mul, p_shr), p = r - fdiv(r, p_mul, p_shr) * P;                   \
        const int oh = fdiv(p, ow_mul, ow_shr), ow = p - fdiv(p, ow_mul, ow_shr) * OW;            \
        __global const float* dyb = dy + dy_off + (ulong)(n * O + g * OG) * (ulong)P + (ulong)p;  \
        _Pragma("unroll")                                                                         \
        for (int t = 0; t < LOADS_A; ++t) {                                                       \
            const int m = lrow + t * LSTEP;                                                       \
            ra_[t] = (r_ok && m0 + m < OG) ? dyb[(m0 + m) * P] : 0.0f;                            \
        }                                                                                         \
        __global const float* xb = x + x_off + (ulong)(n * C) * (ulong)(H * W);                   \
        _Pragma("unroll")                                                                         \
        for (int t = 0; t < LOADS_B; ++t) {                                                       \
            const int ih = oh * SH + dh[t], iw = ow * SW + dw[t];                                 \
            rb_[t] = (r_ok && kok[t] && ih >= 0 && ih < H && iw >= 0 && iw < W)                   \
                ? xb[xoff[t] + ih * W + iw] : 0.0f;                                               \
        }                                                                                         \
    }
#define DEPOSIT(buf)                                                                              \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_A; ++t) As[buf][rr][lrow + t * LSTEP] = STAGE(ra_[t]);              \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_B; ++t) Bs[buf][rr][lrow + t * LSTEP] = STAGE(rb_[t]);
    DOUBLE_BUFFERED_LOOP(r0, r_begin, r_end)
#undef FETCH
#undef DEPOSIT

    // Every (split, row, column) is written, zeros included, so the scratch needs no clearing.
    __global float* out = partial + partial_off + (ulong)s * (ulong)O * (ulong)K;
    _Pragma("unroll")
    for (int i = 0; i < ACC_M; ++i) {
        const int m = m0 + ACC_ROW(i);
        if (m >= OG) continue;
        _Pragma("unroll")
        for (int j = 0; j < ACC_N; ++j) {
            const int kc = col0 + ACC_COL(j);
            if (kc < K) out[(ulong)(g * OG + m) * (ulong)K + (ulong)kc] = acc[i][j];
        }
    }
}

#else  // DIRECT

// The barrier-free form (DIRECT = 1) for CPU devices. POCL keeps a work-item's private
// variables in memory across barriers (one slot per work-item), so a tiled kernel's accumulators
// become gathers and scatters in every vectorised step; without barriers the accumulators stay
// in vector registers, 16 work-items per AVX-512 register. Items run along the pixel columns
// (dimension 0, LX per group, WN columns each, LX apart) and register-block WM rows; operands
// come straight from global memory (the caches serve as the tile), weights as broadcasts.

__kernel __attribute__((reqd_work_group_size(LX, 1, 1)))
void convgemm_forward_direct(const int N, const int C, const int H, const int W,
                             const int O, const int OH, const int OW, const int G,
                             const int PH, const int PW, const int DH, const int DW,
                             __global const float* x, const ulong x_off,
                             __global const float* w, const ulong w_off,
                             __global const float* bias, const ulong bias_off, const int has_bias,
                             __global float* y, const ulong y_off, __global float* pre, const ulong pre_off) {
    const int CG = C / G, OG = O / G, K = CG * KK, P = OH * OW, NP = N * P, HW = H * W;
    const int m0 = get_group_id(1) * WM, g = get_group_id(2);
    const int col0 = get_group_id(0) * (LX * WN) + get_local_id(0);
    int xb[WN], ih0[WN], iw0[WN], pj[WN], nj[WN];
    bool ok[WN];
    _Pragma("unroll")
    for (int j = 0; j < WN; ++j) {
        const int col = col0 + j * LX;
        ok[j] = col < NP;
        nj[j] = ok[j] ? col / P : 0;
        pj[j] = ok[j] ? col - nj[j] * P : 0;
        const int oh = pj[j] / OW, ow = pj[j] - (pj[j] / OW) * OW;
        ih0[j] = oh * SH - PH;
        iw0[j] = ow * SW - PW;
        xb[j] = (nj[j] * C + g * CG) * HW;
    }
    // Rows past OG read the last row (valid memory) and are not stored.
    __global const float* wr[WM];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i) wr[i] = w + w_off + (ulong)(g * OG + min(m0 + i, OG - 1)) * (ulong)K;
    float acc[WM][WN];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i)
        _Pragma("unroll")
        for (int j = 0; j < WN; ++j) acc[i][j] = 0.0f;
    for (int c = 0; c < CG; ++c) {
        _Pragma("unroll")
        for (int kh = 0; kh < KH; ++kh) {
            _Pragma("unroll")
            for (int kw = 0; kw < KW; ++kw) {
                const int k = (c * KH + kh) * KW + kw;
                float b[WN];
                _Pragma("unroll")
                for (int j = 0; j < WN; ++j) {
                    const int ih = ih0[j] + kh * DH, iw = iw0[j] + kw * DW;
                    b[j] = (ok[j] && ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[x_off + xb[j] + (c * H + ih) * W + iw] : 0.0f;
                }
                _Pragma("unroll")
                for (int i = 0; i < WM; ++i) {
                    const float a = wr[i][k];
                    _Pragma("unroll")
                    for (int j = 0; j < WN; ++j) acc[i][j] = fma(a, b[j], acc[i][j]);
                }
            }
        }
    }
    _Pragma("unroll")
    for (int j = 0; j < WN; ++j) {
        if (!ok[j]) continue;
        _Pragma("unroll")
        for (int i = 0; i < WM; ++i) {
            const int m = m0 + i;
            if (m >= OG) continue;
            const int o = g * OG + m;
            store_output(y, y_off, pre, pre_off, (ulong)(nj[j] * O + o) * (ulong)P + (ulong)pj[j],
                         acc[i][j] + (has_bias ? bias[bias_off + o] : 0.0f));
        }
    }
}

__kernel __attribute__((reqd_work_group_size(LX, 1, 1)))
void convgemm_backward_data_direct(const int N, const int C, const int H, const int W,
                                   const int O, const int OH, const int OW, const int G,
                                   const int PH, const int PW, const int DH, const int DW,
                                   __global const float* dy, const ulong dy_off,
                                   __global const float* w, const ulong w_off,
                                   __global float* dx, const ulong dx_off) {
    const int CG = C / G, OG = O / G, HW = H * W, NQ = N * HW, P = OH * OW;
    const int m0 = get_group_id(1) * WM, g = get_group_id(2);
    const int col0 = get_group_id(0) * (LX * WN) + get_local_id(0);
    int db[WN], th0[WN], tw0[WN], qj[WN], nj[WN];
    bool ok[WN];
    _Pragma("unroll")
    for (int j = 0; j < WN; ++j) {
        const int col = col0 + j * LX;
        ok[j] = col < NQ;
        nj[j] = ok[j] ? col / HW : 0;
        qj[j] = ok[j] ? col - nj[j] * HW : 0;
        const int ih = qj[j] / W, iw = qj[j] - (qj[j] / W) * W;
        th0[j] = ih + PH;
        tw0[j] = iw + PW;
        db[j] = (nj[j] * O + g * OG) * P;
    }
    // w~[m, (o, tap)] = w[g*OG + o, m, tap]; rows past CG read the last row and are not stored.
    __global const float* wr[WM];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i) wr[i] = w + w_off + (ulong)(g * OG * CG + min(m0 + i, CG - 1)) * (ulong)KK;
    float acc[WM][WN];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i)
        _Pragma("unroll")
        for (int j = 0; j < WN; ++j) acc[i][j] = 0.0f;
    for (int o = 0; o < OG; ++o) {
        _Pragma("unroll")
        for (int kh = 0; kh < KH; ++kh) {
            _Pragma("unroll")
            for (int kw = 0; kw < KW; ++kw) {
                float b[WN];
                _Pragma("unroll")
                for (int j = 0; j < WN; ++j) {
                    // Output (oh, ow) read this pixel through tap (kh, kw) when oh*SH = ih + PH - kh*DH.
                    const int th = th0[j] - kh * DH, tw = tw0[j] - kw * DW;
                    const int oh = th / SH, ow = tw / SW;
                    const bool hit = ok[j] && th >= 0 && tw >= 0 && oh * SH == th && ow * SW == tw && oh < OH && ow < OW;
                    b[j] = hit ? dy[dy_off + db[j] + (o * OH + oh) * OW + ow] : 0.0f;
                }
                _Pragma("unroll")
                for (int i = 0; i < WM; ++i) {
                    const float a = wr[i][o * CG * KK + kh * KW + kw];
                    _Pragma("unroll")
                    for (int j = 0; j < WN; ++j) acc[i][j] = fma(a, b[j], acc[i][j]);
                }
            }
        }
    }
    _Pragma("unroll")
    for (int j = 0; j < WN; ++j) {
        if (!ok[j]) continue;
        _Pragma("unroll")
        for (int i = 0; i < WM; ++i) {
            const int m = m0 + i;
            if (m < CG) dx[dx_off + (ulong)(nj[j] * C + g * CG + m) * (ulong)HW + (ulong)qj[j]] = acc[i][j];
        }
    }
}

// Weight gradient: items run along the reduction (pixels of the split, LX apart) and each sums a
// WM x WN block of (output channel, weight column) products; one work-group reduction at the end
// (a fixed tree) writes the split's partial block. Range: (S*LX, ceil(OG/WM), G*ceil(CG*KK/WN)).
__kernel __attribute__((reqd_work_group_size(LX, 1, 1)))
void convgemm_backward_weight_direct(const int N, const int C, const int H, const int W,
                                     const int O, const int OH, const int OW, const int G,
                                     const int PH, const int PW, const int DH, const int DW,
                                     const int S, const int chunk,
                                     const uint p_mul, const int p_shr, const uint ow_mul, const int ow_shr,
                                     __global const float* dy, const ulong dy_off,
                                     __global const float* x, const ulong x_off,
                                     __global float* partial, const ulong partial_off) {
    __local float red[WM * WN][LX];
    const int CG = C / G, OG = O / G, K = CG * KK, P = OH * OW, R = N * P, HW = H * W;
    const int lid = get_local_id(0), s = get_group_id(0);
    const int m0 = get_group_id(1) * WM;
    const int kblocks = (K + WN - 1) / WN;
    const int g = get_group_id(2) / kblocks, k0 = (get_group_id(2) - g * kblocks) * WN;
    const int r_begin = s * chunk, r_end = min(R, r_begin + chunk);
    int xoff[WN], dh[WN], dw[WN];
    _Pragma("unroll")
    for (int j = 0; j < WN; ++j) {
        const int kc = min(k0 + j, K - 1);
        const int c = kc / KK, r = kc - (kc / KK) * KK;
        xoff[j] = (g * CG + c) * HW;
        dh[j] = (r / KW) * DH - PH;
        dw[j] = (r % KW) * DW - PW;
    }
    int dyoff[WM];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i) dyoff[i] = (g * OG + min(m0 + i, OG - 1)) * P;
    float acc[WM][WN];
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i)
        _Pragma("unroll")
        for (int j = 0; j < WN; ++j) acc[i][j] = 0.0f;
    for (int r = r_begin + lid; r < r_end; r += LX) {
        const int n = fdiv(r, p_mul, p_shr), p = r - n * P;
        const int oh = fdiv(p, ow_mul, ow_shr), ow = p - oh * OW;
        float a[WM], b[WN];
        _Pragma("unroll")
        for (int i = 0; i < WM; ++i) a[i] = dy[dy_off + n * O * P + dyoff[i] + p];
        _Pragma("unroll")
        for (int j = 0; j < WN; ++j) {
            const int ih = oh * SH + dh[j], iw = ow * SW + dw[j];
            b[j] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[x_off + n * C * HW + xoff[j] + ih * W + iw] : 0.0f;
        }
        _Pragma("unroll")
        for (int i = 0; i < WM; ++i)
            _Pragma("unroll")
            for (int j = 0; j < WN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    _Pragma("unroll")
    for (int i = 0; i < WM; ++i)
        _Pragma("unroll")
        for (int j = 0; j < WN; ++j) red[i * WN + j][lid] = acc[i][j];
    tree_sum_rows(&red[0][0], lid, LX, WM * WN);
    for (int v = lid; v < WM * WN; v += LX) {
        const int i = v / WN, j = v - (v / WN) * WN;
        const int m = m0 + i, kc = k0 + j;
        if (m < OG && kc < K) {
            partial[partial_off + ((ulong)s * (ulong)O + (ulong)(g * OG + m)) * (ulong)K + (ulong)kc] = red[v][0];
        }
    }
}

#endif  // VECTOR / tiled / DIRECT

__kernel __attribute__((reqd_work_group_size(RW, 1, 1)))
void convgemm_reduce(const int count, const int S,
                     __global const float* partial, const ulong partial_off,
                     __global float* dw, const ulong dw_off) {
    const int i = get_global_id(0);
    if (i >= count) return;
    float sum = 0.0f;
    for (int s = 0; s < S; ++s) sum += partial[partial_off + (ulong)s * (ulong)count + (ulong)i];
    dw[dw_off + i] = sum;
}

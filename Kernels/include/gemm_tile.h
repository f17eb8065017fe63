// =================================================================================================
// gemm_tile.h — the register tiles of Clover's local-memory GEMM kernels (convgemm.cl's tiled
// forms, matmul.cl): the accumulators, and with MMA = 1 the tensor-core warp tile — its fragment
// loads from the staged tiles and its m16n8k8 products (mma.h) — so the convolution kernels and
// the batched GEMM compute a staged tile pair the same way.
//
// The includer defines, before the include:
//   TM, TN   the work-group tile (rows x columns) staged as As[TK][TM + LPAD], Bs[TK][TN + LPAD]
//   TK       the K-tile (a multiple of 8 with MMA)
//   WM, WN   MMA = 1: warps along rows and columns (local size (32*WN, WM)), each a
//            (TM/WM) x (TN/WN) warp tile, a multiple of 16 x 8
//   MMA      1: the tensor-core tile below; 0: the includer defines ACC_M, ACC_N (and its own
//            TILE_PRODUCT) for its FP32 register block
// and has tx = get_local_id(0), ty = get_local_id(1) in scope where the macros are used.
//
// Provides:
//   DECLARE_ACCUMULATORS(acc)   float acc[ACC_M][ACC_N], zeroed
//   STAGED_OPERANDS, DOUBLE_BUFFERED_LOOP(k, begin, end)
//                               the double-buffered K loop over tile pairs As[2][TK][..],
//                               Bs[2][TK][..] (below); needs LOADS_A, LOADS_B (the items' loads
//                               per tile) and the kernel's FETCH(k0) and DEPOSIT(buf)
// with MMA = 1 also:
//   RM, RN, WTM, WTN            items along rows / columns of the work-group, the warp tile
//   ACC_M, ACC_N, ACC_ROW(i), ACC_COL(j)
//                               the lane's accumulators acc[2i + h][2j + e] hold D[16i + 8h + g]
//                               [8j + 2t + e] of its warp tile (g = lane / 4, t = lane % 4:
//                               mma.h's layout); ACC_ROW / ACC_COL give their work-group tile row
//                               and column
//   STAGE(v)                    v as it is staged: rounded to TF32 (cvt.rna)
//   LPAD                        8 words of padding per staged row, so that a fragment read (rows
//                               k + t, columns c + g for the lane's t < 4, g < 8) touches 32
//                               different banks
//   TILE_PRODUCT(As, Bs, acc, tx, ty)
//                               acc += the staged tiles' product, K-steps of 8: the lane loads its
//                               A and B fragments (already TF32) and issues MI x NI products
// =================================================================================================

#ifndef CLOVER_GEMM_TILE_H
#define CLOVER_GEMM_TILE_H

// Fully unrolled, as every loop over acc: a loop left rolled indexes acc at run time, and a
// run-time index puts the array on the stack (clang for NVPTX: 256 bytes for 8x8, a local load and
// store per multiply-add) instead of in registers.
#define DECLARE_ACCUMULATORS(acc)                                          \
    float acc[ACC_M][ACC_N];                                               \
    _Pragma("unroll")                                                      \
    for (int i = 0; i < ACC_M; ++i) {                                      \
        _Pragma("unroll")                                                  \
        for (int j = 0; j < ACC_N; ++j) acc[i][j] = 0.0f;                  \
    }

// The tiled GEMM kernels' K loop, double-buffered: the tile pair of step k + 1 is fetched from
// global memory into registers (ra_, rb_) before the product of step k's pair, and deposited in
// the other local buffer after it, so the loads' latency hides behind the products and one
// barrier per step suffices: step k writes buffer (k+1) % 2, which the barrier ending step k-1 has
// every item done reading. The kernel declares STAGED_OPERANDS and defines FETCH(k0) (the
// operands of the tile at k0 into ra_, rb_, zeros outside the matrices) and DEPOSIT(buf) (ra_,
// rb_ into As[buf], Bs[buf], through STAGE). Local memory: 2 x 4*TK*(TM+TN+2*LPAD) bytes.
#define STAGED_OPERANDS float ra_[LOADS_A], rb_[LOADS_B];
#define DOUBLE_BUFFERED_LOOP(k0, begin, end)                                                      \
    FETCH(begin)                                                                                  \
    DEPOSIT(0)                                                                                    \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                 \
    for (int k0 = (begin), buf_ = 0; k0 < (end); k0 += TK, buf_ ^= 1) {                           \
        const bool more_ = k0 + TK < (end);                                                       \
        if (more_) { FETCH(k0 + TK) }                                                             \
        TILE_PRODUCT(As[buf_], Bs[buf_], acc, tx, ty)                                             \
        if (more_) { DEPOSIT(buf_ ^ 1) }                                                          \
        barrier(CLK_LOCAL_MEM_FENCE);                                                             \
    }

#if MMA
#include "mma.h"
#define WTM (TM / WM)
#define WTN (TN / WN)
#define MI (WTM / 16)
#define NI (WTN / 8)
#define RM WM
#define RN (32 * WN)
#define ACC_M (2 * MI)
#define ACC_N (2 * NI)
#define ACC_ROW(i) (ty * WTM + ((i) >> 1) * 16 + ((i) & 1) * 8 + ((tx) & 31) / 4)
#define ACC_COL(j) (((tx) >> 5) * WTN + ((j) >> 1) * 8 + ((tx) & 3) * 2 + ((j) & 1))
#define STAGE(v) tf32_round(v)
#define LPAD 8

// The B fragments of a K-step are loaded once, the A fragments one row block at a time: 4 + 2*NI
// fragment registers live instead of 4*MI + 2*NI, which is what keeps the 128x128 sets'
// double-buffered loops within 128 registers without spilling (the static NVIDIA check).
#define TILE_PRODUCT(As, Bs, acc, tx, ty)                                                  \
    _Pragma("unroll")                                                                      \
    for (int kk = 0; kk < TK; kk += 8) {                                                   \
        const int g_ = ((tx) & 31) >> 2, t_ = (tx) & 3;                                    \
        const int r_ = (ty) * WTM + g_, c_ = ((tx) >> 5) * WTN + g_;                       \
        uint b_[NI][2];                                                                    \
        _Pragma("unroll")                                                                  \
        for (int j = 0; j < NI; ++j) {                                                     \
            b_[j][0] = as_uint(Bs[kk + t_][c_ + j * 8]);                                   \
            b_[j][1] = as_uint(Bs[kk + t_ + 4][c_ + j * 8]);                               \
        }                                                                                  \
        _Pragma("unroll")                                                                  \
        for (int i = 0; i < MI; ++i) {                                                     \
            uint a_[4];                                                                    \
            a_[0] = as_uint(As[kk + t_][r_ + i * 16]);                                     \
            a_[1] = as_uint(As[kk + t_][r_ + i * 16 + 8]);                                 \
            a_[2] = as_uint(As[kk + t_ + 4][r_ + i * 16]);                                 \
            a_[3] = as_uint(As[kk + t_ + 4][r_ + i * 16 + 8]);                             \
            _Pragma("unroll")                                                              \
            for (int j = 0; j < NI; ++j) {                                                 \
                MMA_TF32(acc[2 * i][2 * j], acc[2 * i][2 * j + 1], acc[2 * i + 1][2 * j],  \
                         acc[2 * i + 1][2 * j + 1], a_, b_[j]);                            \
            }                                                                              \
        }                                                                                  \
    }
#endif

#endif  // CLOVER_GEMM_TILE_H

// =================================================================================================
// matmul.cl — the batched GEMM on TF32 tensor cores: C[b] = alpha * op(A[b]) * op(B[b]) + beta *
// C[b] for the matrices of a strided batch (attention's Q·Kᵀ and P·V and their gradients, and every
// other MatMul under TF32). Strict FP32 GEMMs are CLBlast's; this file is the tensor-core form only.
//
// Kernels:
//   matmul_tf32   op(A) is M x K, op(B) K x N, C M x N, all row-major with leading dimensions lda,
//                 ldb, ldc; matrix b of each starts stride_* elements after matrix b - 1. Operands
//                 are rounded to TF32 (cvt.rna) as they are staged, products accumulate in FP32.
//                 beta = 0 never reads C (its old contents may be anything, NaN included).
//                 Range: (ceil(N/TN)*32*WN, ceil(M/TM)*WM, batch), local (32*WN, WM, 1).
//
// Macros: (integers; the host checks the constraints before it builds a program)
//   TM, TN   work-group tile: rows x columns of C
//   TK       K-tile staged in local memory per step, double-buffered (As[2][TK][TM+8] +
//            Bs[2][TK][TN+8] floats), a multiple of 8
//   WM, WN   warps along rows and columns, each a (TM/WM) x (TN/WN) warp tile, a multiple of 16 x 8
//            (gemm_tile.h)
//   TA, TB   1: op(A) = Aᵀ (A stored K x M) / op(B) = Bᵀ (B stored N x K); 0 (default): as stored
//   MMA_EMULATE (mma.h) 1: the portable emulation of the instruction (any OpenCL device: the
//            conformance sweep); 0 (default): the PTX, for NVIDIA compute capability 8.0 or later
// Constraints: WG = 32*WM*WN <= 256, (TM*TK) % WG == 0, (TN*TK) % WG == 0, WG a multiple of TM,
// TN and TK, 8*TK*(TM+TN+16) (+ the emulation's 768*WM*WN) <= 48 KiB. Indices within a matrix are 32-bit.
//
// Layout: every buffer is (pointer, ulong offset in elements).
// =================================================================================================

#ifndef TM
#define TM 64
#endif
#ifndef TN
#define TN 64
#endif
#ifndef TK
#define TK 16
#endif
#ifndef WM
#define WM 2
#endif
#ifndef WN
#define WN 2
#endif
#ifndef TA
#define TA 0
#endif
#ifndef TB
#define TB 0
#endif
#define MMA 1
#include "gemm_tile.h"
#define WG (RM * RN)
#define LOADS_A (TM * TK / WG)
#define LOADS_B (TN * TK / WG)

// Where load t of this item sits in the staged tiles: the fastest-moving index follows the
// operand's contiguous axis in global memory (k for A as stored, m for Aᵀ; n for B as stored, k
// for Bᵀ), so neighbouring items read neighbouring words. Written in tid and t rather than as
// l = tid + t*WG divided by the tile side (which would be the same numbers: WG is a multiple of
// TK, TM and TN), so that the compiler sees one base per operand and constant steps between an
// item's loads, and the 128x128 set keeps its fetched operands within 128 registers.
#if TA
#define A_ROW(t) (tid % TM)
#define A_K(t) (tid / TM + (t) * (WG / TM))
#define A_AT(m, k) ((k) * lda + (m))
#else
#define A_ROW(t) (tid / TK + (t) * (WG / TK))
#define A_K(t) (tid % TK)
#define A_AT(m, k) ((m) * lda + (k))
#endif
#if TB
#define B_COL(t) (tid / TK + (t) * (WG / TK))
#define B_K(t) (tid % TK)
#define B_AT(k, n) ((n) * ldb + (k))
#else
#define B_COL(t) (tid % TN)
#define B_K(t) (tid / TN + (t) * (WG / TN))
#define B_AT(k, n) ((k) * ldb + (n))
#endif

__kernel __attribute__((reqd_work_group_size(RN, RM, 1)))
void matmul_tf32(const int M, const int N, const int K, const float alpha, const float beta,
                 __global const float* A, const ulong a_off, const int lda, const ulong stride_a,
                 __global const float* B, const ulong b_off, const int ldb, const ulong stride_b,
                 __global float* C, const ulong c_off, const int ldc, const ulong stride_c) {
    __local float As[2][TK][TM + LPAD];
    __local float Bs[2][TK][TN + LPAD];
    const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * RN + tx;
    MMA_SETUP(tid, WG / 32)
    const int n0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM;
    const ulong batch = get_group_id(2);
    A += a_off + batch * stride_a;
    B += b_off + batch * stride_b;
    C += c_off + batch * stride_c;

    DECLARE_ACCUMULATORS(acc)
    STAGED_OPERANDS
#define FETCH(k0)                                                                                 \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_A; ++t) {                                                           \
        const int m = m0 + A_ROW(t), k = (k0) + A_K(t);                                           \
        ra_[t] = (m < M && k < K) ? A[A_AT(m, k)] : 0.0f;                                         \
    }                                                                                             \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_B; ++t) {                                                           \
        const int n = n0 + B_COL(t), k = (k0) + B_K(t);                                           \
        rb_[t] = (n < N && k < K) ? B[B_AT(k, n)] : 0.0f;                                         \
    }
#define DEPOSIT(buf)                                                                              \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_A; ++t) As[buf][A_K(t)][A_ROW(t)] = tf32_round(ra_[t]);             \
    _Pragma("unroll")                                                                             \
    for (int t = 0; t < LOADS_B; ++t) Bs[buf][B_K(t)][B_COL(t)] = tf32_round(rb_[t]);
    DOUBLE_BUFFERED_LOOP(k0, 0, K)
#undef FETCH
#undef DEPOSIT

    _Pragma("unroll")
    for (int i = 0; i < ACC_M; ++i) {
        const int m = m0 + ACC_ROW(i);
        if (m >= M) continue;
        _Pragma("unroll")
        for (int j = 0; j < ACC_N; ++j) {
            const int n = n0 + ACC_COL(j);
            if (n >= N) continue;
            const int at = m * ldc + n;
            C[at] = beta == 0.0f ? alpha * acc[i][j] : mad(alpha, acc[i][j], beta * C[at]);
        }
    }
}

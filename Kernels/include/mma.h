// =================================================================================================
// mma.h — TF32 tensor-core products for OpenCL C 1.2: NVIDIA's warp-level
// `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32` through inline PTX, or, with
// MMA_EMULATE = 1, a portable function that computes the same instruction from the same per-lane
// fragments, the 32 lanes of a warp (32 consecutive work-items) exchanging them through local
// memory. Everything architecture-specific of Clover lives in this header.
//
// Provides:
//   tf32_round(x)   x rounded to TF32 (10 explicit mantissa bits) as cvt.rna.tf32.f32 does: to
//                   nearest, ties away from zero; infinities and NaNs pass unchanged. A float whose
//                   13 low mantissa bits are 0.
//   MMA_TF32(d0, d1, d2, d3, a, b)
//                   D = A * B + D for one 16x8x8 product of the warp: a[4] and b[2] are the lane's
//                   A and B fragments as uint (TF32 bit patterns, e.g. as_uint(tf32_round(x))),
//                   d0..d3 its four FP32 accumulators, in the instruction's documented layout with
//                   g = lane / 4, t = lane % 4:
//                     a[0] = A[g][t], a[1] = A[g+8][t], a[2] = A[g][t+4], a[3] = A[g+8][t+4]
//                     b[0] = B[t][g], b[1] = B[t+4][g]
//                     d0 = D[g][2t], d1 = D[g][2t+1], d2 = D[g+8][2t], d3 = D[g+8][2t+1]
//                   Every work-item of the work-group must reach it (a warp-wide instruction; the
//                   emulation holds two barriers).
//   MMA_SETUP(tid, warps)
//                   at kernel function scope, before the first MMA_TF32: tid the work-item's linear
//                   local id (lanes tid % 32 of warp tid / 32), warps the work-group's warps. Declares
//                   the emulation's local scratch (192 floats per warp); nothing on a GPU.
//
// Macros: MMA_EMULATE 1: the portable emulation (any OpenCL device); 0 (default): the PTX
// instructions, for NVIDIA devices of compute capability 8.0 or later only.
// =================================================================================================

#ifndef CLOVER_MMA_H
#define CLOVER_MMA_H

#ifndef MMA_EMULATE
#define MMA_EMULATE 0
#endif

#if MMA_EMULATE

static inline float tf32_round(const float x) {
    const uint u = as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    // Adding half of the dropped 13 bits to the magnitude and truncating rounds ties away from
    // zero; a carry into the exponent is the correct rounding up (to infinity past the largest).
    return as_float((u + 0x1000u) & 0xffffe000u);
}

#define MMA_SCRATCH 192   // A[16][8] then B[8][8], floats, per warp

#define MMA_SETUP(tid, warps)                                                             \
    __local float mma_space_[(warps) * MMA_SCRATCH];                                      \
    __local float* const mma_scratch_ = mma_space_ + ((tid) >> 5) * MMA_SCRATCH;         \
    const int mma_lane_ = (tid) & 31;

// One m16n8k8 product of a warp: every lane deposits its fragments where the documented layout
// puts them, then computes its four accumulators from the whole A and B.
static inline void mma_tf32_emulated(float* d0, float* d1, float* d2, float* d3,
                                     const uint a0, const uint a1, const uint a2, const uint a3,
                                     const uint b0, const uint b1, __local float* s, const int lane) {
    const int g = lane >> 2, t = lane & 3;
    __local float* A = s;         // A[row][k], 16 x 8
    __local float* B = s + 128;   // B[k][col], 8 x 8
    A[g * 8 + t] = as_float(a0);
    A[(g + 8) * 8 + t] = as_float(a1);
    A[g * 8 + t + 4] = as_float(a2);
    A[(g + 8) * 8 + t + 4] = as_float(a3);
    B[t * 8 + g] = as_float(b0);
    B[(t + 4) * 8 + g] = as_float(b1);
    barrier(CLK_LOCAL_MEM_FENCE);
    float r0 = *d0, r1 = *d1, r2 = *d2, r3 = *d3;
    for (int k = 0; k < 8; ++k) {
        const float lo = A[g * 8 + k], hi = A[(g + 8) * 8 + k];
        const float e = B[k * 8 + 2 * t], o = B[k * 8 + 2 * t + 1];
        r0 = fma(lo, e, r0);
        r1 = fma(lo, o, r1);
        r2 = fma(hi, e, r2);
        r3 = fma(hi, o, r3);
    }
    // The scratch is rewritten by the next product only after every lane has read it.
    barrier(CLK_LOCAL_MEM_FENCE);
    *d0 = r0;
    *d1 = r1;
    *d2 = r2;
    *d3 = r3;
}

#define MMA_TF32(d0, d1, d2, d3, a, b) \
    mma_tf32_emulated(&(d0), &(d1), &(d2), &(d3), (a)[0], (a)[1], (a)[2], (a)[3], (b)[0], (b)[1], \
                      mma_scratch_, mma_lane_)

#else  // the PTX instructions

// NVIDIA's OpenCL compiler takes GNU `asm` as CLBlast and Leela Zero write it; clang's OpenCL C
// (the static NVIDIA check) knows only the reserved spelling.
#if defined(__clang__)
#define MMA_ASM __asm__
#define MMA_ASM_VOLATILE __asm__ __volatile__
#else
#define MMA_ASM asm
#define MMA_ASM_VOLATILE asm volatile
#endif

static inline float tf32_round(const float x) {
    uint r;
    MMA_ASM("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return as_float(r);
}

#define MMA_SETUP(tid, warps)

#define MMA_TF32(d0, d1, d2, d3, a, b)                                                        \
    MMA_ASM_VOLATILE("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "                    \
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"            \
                 : "+f"(d0), "+f"(d1), "+f"(d2), "+f"(d3)                                     \
                 : "r"((a)[0]), "r"((a)[1]), "r"((a)[2]), "r"((a)[3]), "r"((b)[0]), "r"((b)[1]))

#endif

#endif  // CLOVER_MMA_H

// =================================================================================================
// tensorcore.cl — the TF32 tensor-core probe: one m16n8k8 product through mma.h, as the
// convolution kernels issue it, for the host to compare with its own product before it lets any
// op use the tensor cores (and for the tests to check mma.h's emulation against the documented
// fragment layout).
//
// Kernels:
//   tf32_mma_probe   D = C + tf32(A) * tf32(B) for A [16][8], B [8][8], C and D [16][8], all row-major,
//                    each lane loading its fragments and storing its accumulators in mma.h's layout;
//                    and R[i] = tf32_round(X[i]) for i < 32. One work-group of 32 items (one warp).
//
// Macros: MMA_EMULATE (mma.h): 1 runs the portable emulation on any device; 0 (default) the PTX
// instructions, which only NVIDIA devices of compute capability 8.0 or later build.
//
// Layout: every buffer is (pointer, ulong offset in elements).
// =================================================================================================

#include "mma.h"

__kernel __attribute__((reqd_work_group_size(32, 1, 1)))
void tf32_mma_probe(__global const float* A, const ulong a_off, __global const float* B, const ulong b_off,
                    __global const float* C, const ulong c_off, __global float* D, const ulong d_off,
                    __global const float* X, const ulong x_off, __global float* R, const ulong r_off) {
    const int lane = get_local_id(0), g = lane >> 2, t = lane & 3;
    MMA_SETUP(lane, 1)
    A += a_off;
    B += b_off;
    C += c_off;
    D += d_off;
    uint a[4], b[2];
    a[0] = as_uint(tf32_round(A[g * 8 + t]));
    a[1] = as_uint(tf32_round(A[(g + 8) * 8 + t]));
    a[2] = as_uint(tf32_round(A[g * 8 + t + 4]));
    a[3] = as_uint(tf32_round(A[(g + 8) * 8 + t + 4]));
    b[0] = as_uint(tf32_round(B[t * 8 + g]));
    b[1] = as_uint(tf32_round(B[(t + 4) * 8 + g]));
    float d0 = C[g * 8 + 2 * t], d1 = C[g * 8 + 2 * t + 1];
    float d2 = C[(g + 8) * 8 + 2 * t], d3 = C[(g + 8) * 8 + 2 * t + 1];
    MMA_TF32(d0, d1, d2, d3, a, b);
    D[g * 8 + 2 * t] = d0;
    D[g * 8 + 2 * t + 1] = d1;
    D[(g + 8) * 8 + 2 * t] = d2;
    D[(g + 8) * 8 + 2 * t + 1] = d3;
    R[r_off + lane] = tf32_round(X[x_off + lane]);
}

// =================================================================================================
// attention.cl — the hand-written parts of multi-head scaled dot-product attention: the masked
// softmax over attention scores, its gradient, and the head-layout transpose. The two GEMMs
// (Q·Kᵀ and A·V) run in CLBlast's strided-batched SGEMM, not here.
//
// Kernels:
//   masked_softmax_forward   y[r, j] = exp(x[r, j] - m) / s over the keys j row r may attend to,
//                            0 for every other key; rows that may attend to nothing are all 0.
//                            (one work-group of WG items per row r of the [B, H, Lq, Lk] scores)
//   softmax_backward         dx[r, j] = y[r, j] * (dy[r, j] - sum_k dy[r, k] * y[r, k])
//                            (one work-group of WG items per row of length n)
//   (heads are split and merged by layout.cl's transpose_middle_axes)
//
// Macros:
//   WG   work-group size of the two softmax kernels, a power of two (default 64).
// Includes reduce.h (the work-group max and sum trees).
//
// Layout: scores are row-major [B, H, Lq, Lk], one row per (b, h, query). The key-padding mask is
// an int array [B, Lk] (non-zero = the key may be attended to, 0 = padding), shared by every
// head and query of batch b. With causal masking, query i may attend to keys j <= i (top-left
// aligned, like PyTorch's is_causal). Every buffer is (pointer, ulong offset in elements). The
// softmax subtracts the row maximum over the allowed keys first, so scores of any magnitude stay
// finite. Softmax kernels launch exactly rows * WG items but still give a group past the last
// row nothing to do.
// =================================================================================================

#ifndef WG
#define WG 64
#endif

// The row maximum and sums are reduce.h's trees over scratch[0..WG) (tree_max, tree_sum).
#include "reduce.h"

// Neither softmax kernel returns early: every item of a group reaches every barrier, which
// pocl's work-group compiler needs (an early return, even a uniform one, crashed it). Items of a
// group past the last row (none with the exact launch Clover makes) simply get no columns.

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void masked_softmax_forward(const int rows, const int heads, const int lq, const int lk,
                            const int use_mask, const int causal,
                            __global const float* x, const ulong x_off,
                            __global const int* valid, const ulong valid_off,
                            __global float* y, const ulong y_off) {
    __local float scratch[WG];
    const int row = get_group_id(0);
    const int lid = get_local_id(0);
    const int width = row < rows ? lk : 0;
    const int query = row % lq;
    const int batch = row / (heads * lq);
    __global const float* xr = x + x_off + (ulong)row * lk;
    __global float* yr = y + y_off + (ulong)row * lk;
    __global const int* vr = valid + valid_off + (ulong)batch * lk;
    // Keys past `end` are hidden by the causal mask.
    const int end = causal ? min(width, query + 1) : width;

    float m = -INFINITY;
    for (int j = lid; j < end; j += WG) {
        if (!use_mask || vr[j] != 0) m = fmax(m, xr[j]);
    }
    scratch[lid] = m;
    tree_max(scratch, lid, WG);
    m = scratch[0];
    // No visible key: the row is all 0 (a defined result instead of 0/0 = NaN).
    const int none = m == -INFINITY;
    barrier(CLK_LOCAL_MEM_FENCE);  // everyone has read scratch[0] before it is overwritten

    float s = 0.0f;
    for (int j = lid; !none && j < end; j += WG) {
        if (!use_mask || vr[j] != 0) s += exp(xr[j] - m);
    }
    scratch[lid] = s;
    tree_sum(scratch, lid, WG);
    const float inv = none ? 0.0f : 1.0f / scratch[0];
    for (int j = lid; j < width; j += WG) {
        const int allowed = !none && j < end && (!use_mask || vr[j] != 0);
        yr[j] = allowed ? exp(xr[j] - m) * inv : 0.0f;
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void softmax_backward(const int rows, const int n,
                      __global const float* dy, const ulong dy_off,
                      __global const float* y, const ulong y_off,
                      __global float* dx, const ulong dx_off) {
    __local float scratch[WG];
    const int row = get_group_id(0);
    const int lid = get_local_id(0);
    const int width = row < rows ? n : 0;
    __global const float* dyr = dy + dy_off + (ulong)row * n;
    __global const float* yr = y + y_off + (ulong)row * n;
    __global float* dxr = dx + dx_off + (ulong)row * n;
    float dot = 0.0f;
    for (int j = lid; j < width; j += WG) dot += dyr[j] * yr[j];
    scratch[lid] = dot;
    tree_sum(scratch, lid, WG);
    dot = scratch[0];
    // Masked keys and all-masked rows have y = 0, so their gradient is exactly 0.
    for (int j = lid; j < width; j += WG) dxr[j] = yr[j] * (dyr[j] - dot);
}


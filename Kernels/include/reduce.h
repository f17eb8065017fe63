// =================================================================================================
// reduce.h — the work-group tree sums shared by the kernel families. A kernel file takes it with
// an include directive naming reduce.h; KernelSources inlines it (embedded, or from
// CLOVER_KERNEL_DIR/include), so it is part of every program's source text and of its cache key.
//
// Functions (every item of the work-group must call them: they hold barriers):
//   tree_sum(s, lid, n)                   s[0] = s[0] + ... + s[n-1]
//   tree_sum2(a, b, lid, n)               the same over two arrays at once
//   tree_sum_columns(s, lx, ly, lx_size, ly_size)
//                                         s[lx] = sum over ly of s[ly * lx_size + lx]: the columns
//                                         of an [ly_size, lx_size] tile, item (lx, ly) at
//                                         lid = ly * lx_size + lx
//   tree_sum2_columns(a, b, lx, ly, lx_size, ly_size)
//
// n and ly_size must be powers of two. Each begins with a barrier (the callers' stores become
// visible) and ends with one (the result is visible to every item, and the scratch may be reused
// after the item reads it). The summation order is fixed, so results are deterministic.
// =================================================================================================

#ifndef CLOVER_REDUCE_H
#define CLOVER_REDUCE_H

static inline void tree_sum(__local float* s, const int lid, const int n) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        if (lid < stride) s[lid] += s[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

static inline void tree_sum2(__local float* a, __local float* b, const int lid, const int n) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        if (lid < stride) {
            a[lid] += a[lid + stride];
            b[lid] += b[lid + stride];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

static inline void tree_sum_columns(__local float* s, const int lx, const int ly, const int lx_size, const int ly_size) {
    barrier(CLK_LOCAL_MEM_FENCE);
    const int lid = ly * lx_size + lx;
    for (int stride = ly_size / 2; stride > 0; stride >>= 1) {
        if (ly < stride) s[lid] += s[lid + stride * lx_size];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

static inline void tree_sum2_columns(__local float* a, __local float* b, const int lx, const int ly, const int lx_size,
                              const int ly_size) {
    barrier(CLK_LOCAL_MEM_FENCE);
    const int lid = ly * lx_size + lx;
    for (int stride = ly_size / 2; stride > 0; stride >>= 1) {
        if (ly < stride) {
            a[lid] += a[lid + stride * lx_size];
            b[lid] += b[lid + stride * lx_size];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

#endif

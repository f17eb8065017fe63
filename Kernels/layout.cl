// =================================================================================================
// layout.cl — data movement: concatenation and splitting along an axis, and copies of strided views
// (transposes, permutes, slices) into contiguous tensors, with the gradient of the latter.
//
// Kernels:
//   copy_blocks               dst[r*dst_stride + c] = src[r*src_stride + c] for r < rows, c < len
//                             (1-D range over n = rows*len; concat and split are one launch per part)
//   strided_gather            y[j] = x[offset + sum_k idx_k(j) * stride_k]        (range over outputs)
//                             where idx(j) is j unravelled row-major over the view's sizes
//   strided_scatter_gather    dx[e] = dy[j] if element e of x is view element j, else 0
//                             (gather form of the scatter-back gradient: range over x's elements)
//   transpose_middle_axes     y[a, c, b, d] = x[a, b, c, d] for x of shape [d0, d1, d2, d3] (3-D
//                             range [d3, d1, d0*d2]): attention's head split and merge, and the
//                             convolution's [N, O, P] <-> [O, N, P] relayout
//
// Macros: none.
//
// Layout: every buffer is passed as (pointer, ulong offset in elements). Indices are 32-bit `int`,
// so no item divides in 64 bits: for copy_blocks the host checks rows * stride < 2^31. A view of
// rank <= 8 comes as int8 vectors of sizes and strides (unused lanes: size 1, stride 0) plus an
// element offset; the host drops size-1 axes and checks that every index fits in an int. The global size may exceed n
// (rounded up to the work-group size): each kernel checks its index against n.
//
// strided_scatter_gather needs a view whose elements are all distinct: sorted by decreasing
// stride, each stride exceeds the span of all smaller-stride axes, so greedy division recovers the
// unique index of any element (or shows it lies outside the view). The host sorts the axes and
// passes, per axis, the stride in x and the stride of the same axis in the contiguous dy.
// =================================================================================================

__kernel void copy_blocks(const int n, const int len,
                          __global const float* src, const ulong src_off, const int src_stride,
                          __global float* dst, const ulong dst_off, const int dst_stride) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int r = i / len, c = i - r * len;
    dst[dst_off + r * dst_stride + c] = src[src_off + r * src_stride + c];
}

__kernel void strided_gather(const ulong n, const int rank, const int8 sizes, const int8 strides, const ulong offset,
                             __global const float* x, const ulong x_off,
                             __global float* y, const ulong y_off) {
    const ulong j = get_global_id(0);
    if (j >= n) return;
    const int sz[8] = {sizes.s0, sizes.s1, sizes.s2, sizes.s3, sizes.s4, sizes.s5, sizes.s6, sizes.s7};
    const int st[8] = {strides.s0, strides.s1, strides.s2, strides.s3, strides.s4, strides.s5, strides.s6, strides.s7};
    int rem = (int)j;
    int src = 0;
    // Unravel from the last (fastest) axis. All 8 axes, unrolled, with the rank as a guard: a loop
    // bounded by the rank indexes sz and st at run time, which puts them on the stack.
    #pragma unroll
    for (int k = 7; k >= 0; --k) {
        if (k < rank) {
            src += (rem % sz[k]) * st[k];
            rem /= sz[k];
        }
    }
    y[y_off + j] = x[x_off + offset + src];
}

__kernel void strided_scatter_gather(const ulong n, const int rank, const int8 sizes, const int8 strides,
                                     const int8 dy_strides, const ulong offset,
                                     __global const float* dy, const ulong dy_off,
                                     __global float* dx, const ulong dx_off) {
    const ulong e = get_global_id(0);
    if (e >= n) return;
    const int sz[8] = {sizes.s0, sizes.s1, sizes.s2, sizes.s3, sizes.s4, sizes.s5, sizes.s6, sizes.s7};
    const int st[8] = {strides.s0, strides.s1, strides.s2, strides.s3, strides.s4, strides.s5, strides.s6, strides.s7};
    const int ost[8] = {dy_strides.s0, dy_strides.s1, dy_strides.s2, dy_strides.s3,
                        dy_strides.s4, dy_strides.s5, dy_strides.s6, dy_strides.s7};
    float value = 0.0f;
    if (e >= offset) {
        int rem = (int)(e - offset);
        int j = 0;
        bool inside = true;
        // Axes arrive sorted by decreasing stride. Unrolled over all 8 with guards, as in
        // strided_gather, so the axis arrays stay in registers.
        #pragma unroll
        for (int k = 0; k < 8; ++k) {
            if (k < rank && inside) {
                const int q = rem / st[k];
                inside = q < sz[k];
                j += q * ost[k];
                rem -= q * st[k];
            }
        }
        if (inside && rem == 0) value = dy[dy_off + j];
    }
    dx[dx_off + e] = value;
}

__kernel void transpose_middle_axes(const int d0, const int d1, const int d2, const int d3,
                                    __global const float* x, const ulong x_off,
                                    __global float* y, const ulong y_off) {
    // dim 0: d; dim 1: b; dim 2: a*d2 + c. One int division per item (64-bit divisions per
    // element made this relayout slow on CPU devices).
    const int d = get_global_id(0);
    const int b = get_global_id(1);
    const int ac = get_global_id(2);
    if (d >= d3 || b >= d1 || ac >= d0 * d2) return;
    const int a = ac / d2;
    const int c = ac - a * d2;
    y[y_off + ((ulong)ac * (ulong)d1 + (ulong)b) * (ulong)d3 + (ulong)d] =
        x[x_off + (((ulong)a * (ulong)d1 + (ulong)b) * (ulong)d2 + (ulong)c) * (ulong)d3 + (ulong)d];
}

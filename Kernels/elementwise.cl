// =================================================================================================
// elementwise.cl — pointwise arithmetic and activations over flat float buffers.
//
// Kernels:
//   binary_elementwise   y[i] = a[i] OP b[i]                       (1-D range, one item per element)
//   relu_forward         y[i] = max(x[i], 0)
//   relu_backward        dx[i] = x[i] > 0 ? dy[i] : 0
//   scale_elementwise    y[i] = alpha * x[i]
//   fill_value           y[i] = value  (zero and one tensors without a host upload)
//
// Macros:
//   OP   binary operation for binary_elementwise: OP_ADD (default), OP_MUL or OP_ADD_RELU
//        (max(a + b, 0): a residual sum and its ReLU in one pass).
//
// Layout: every buffer is passed as (pointer, ulong offset in elements); tensors are contiguous,
// so an element index is the same in every operand. The global size may exceed n (rounded up to
// the work-group size): each kernel checks its index against n.
// =================================================================================================

#define OP_ADD 0
#define OP_MUL 1
#define OP_ADD_RELU 2
#ifndef OP
#define OP OP_ADD
#endif

__kernel void binary_elementwise(const ulong n,
                                 __global const float* a, const ulong a_off,
                                 __global const float* b, const ulong b_off,
                                 __global float* y, const ulong y_off) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
#if OP == OP_MUL
    y[y_off + i] = a[a_off + i] * b[b_off + i];
#elif OP == OP_ADD_RELU
    y[y_off + i] = fmax(a[a_off + i] + b[b_off + i], 0.0f);
#else
    y[y_off + i] = a[a_off + i] + b[b_off + i];
#endif
}

__kernel void relu_forward(const ulong n,
                           __global const float* x, const ulong x_off,
                           __global float* y, const ulong y_off) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = fmax(x[x_off + i], 0.0f);
}

__kernel void relu_backward(const ulong n,
                            __global const float* dy, const ulong dy_off,
                            __global const float* x, const ulong x_off,
                            __global float* dx, const ulong dx_off) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    dx[dx_off + i] = x[x_off + i] > 0.0f ? dy[dy_off + i] : 0.0f;
}

__kernel void scale_elementwise(const ulong n, const float alpha,
                                __global const float* x, const ulong x_off,
                                __global float* y, const ulong y_off) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = alpha * x[x_off + i];
}

__kernel void fill_value(const ulong n, const float value, __global float* y, const ulong y_off) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = value;
}

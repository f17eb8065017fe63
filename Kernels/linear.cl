// =================================================================================================
// linear.cl — the bias half of a linear (fully connected) layer; the x·Wᵀ product is a CLBlast
// GEMM, not here.
//
// Kernels:
//   bias_add_rows        y[r, c] = x[r, c] + b[c]                    (1-D range over rows * cols)
//   bias_grad_rows       db[c] = sum over r, in increasing r, of dy[r, c]   (1-D range over cols)
//
// Macros: none.
//
// Layout: x, y and dy are row-major [rows, cols] (every leading axis folded into rows); b and db
// are [cols]. bias_add_rows may run in place (y == x, same offset): each item reads and writes
// only its own element. bias_grad_rows gives each column one owner that sums its rows in a fixed
// order, so the reduction is deterministic without atomics; neighbouring items read neighbouring
// columns, so loads coalesce. Every buffer is (pointer, ulong offset in elements); indices are
// 32-bit `int` (the host rejects tensors of 2^31 or more elements), so no item divides in 64
// bits. Global sizes are rounded up to the work-group size, so each kernel checks its index.
// =================================================================================================

__kernel void bias_add_rows(const int n, const int cols,
                            __global const float* x, const ulong x_off,
                            __global const float* b, const ulong b_off,
                            __global float* y, const ulong y_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = x[x_off + i] + b[b_off + i % cols];
}

__kernel void bias_grad_rows(const int rows, const int cols,
                             __global const float* dy, const ulong dy_off,
                             __global float* db, const ulong db_off) {
    const int c = get_global_id(0);
    if (c >= cols) return;
    float acc = 0.0f;
    for (int r = 0; r < rows; ++r) acc += dy[dy_off + r * cols + c];
    db[db_off + c] = acc;
}

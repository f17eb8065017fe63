// =================================================================================================
// loss.cl — softmax cross-entropy over class logits, and the mean reduction it ends with.
//
// Kernels:
//   softmax_xent_rows       loss[r] = logsumexp(x[r, :]) - x[r, label[r]]     (1-D range over rows)
//   softmax_xent_backward   dx[r, c] = (g / rows) * (softmax(x[r, :])[c] - [c == label[r]])
//                                                                             (1-D range over rows)
//   mean_reduce             y[0] = sum(v[0..n)) / n        (one work-group of size WG, 1-D range WG)
//
// Macros:
//   WG   work-group size of mean_reduce, a power of two (default 256).
//
// Layout: logits are row-major [rows, classes]; labels are int class indices, already validated
// on the host to lie in [0, classes). Every buffer is (pointer, ulong offset in elements). The
// softmax subtracts the row maximum first, so large logits neither overflow nor lose the label's
// contribution.
// =================================================================================================

#ifndef WG
#define WG 256
#endif

__kernel void softmax_xent_rows(const int rows, const int classes,
                                __global const float* x, const ulong x_off,
                                __global const int* label, const ulong label_off,
                                __global float* loss, const ulong loss_off) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* row = x + x_off + (ulong)r * classes;
    float m = row[0];
    for (int c = 1; c < classes; ++c) m = fmax(m, row[c]);
    float s = 0.0f;
    for (int c = 0; c < classes; ++c) s += exp(row[c] - m);
    loss[loss_off + r] = log(s) + m - row[label[label_off + r]];
}

__kernel void softmax_xent_backward(const int rows, const int classes,
                                    __global const float* g, const ulong g_off,
                                    __global const float* x, const ulong x_off,
                                    __global const int* label, const ulong label_off,
                                    __global float* dx, const ulong dx_off) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* row = x + x_off + (ulong)r * classes;
    __global float* drow = dx + dx_off + (ulong)r * classes;
    float m = row[0];
    for (int c = 1; c < classes; ++c) m = fmax(m, row[c]);
    float s = 0.0f;
    for (int c = 0; c < classes; ++c) s += exp(row[c] - m);
    const float scale = g[g_off] / (float)rows;
    const float inv = 1.0f / s;
    const int target = label[label_off + r];
    for (int c = 0; c < classes; ++c) {
        const float p = exp(row[c] - m) * inv;
        drow[c] = scale * (p - (c == target ? 1.0f : 0.0f));
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void mean_reduce(const int n,
                 __global const float* v, const ulong v_off,
                 __global float* y, const ulong y_off) {
    __local float partial[WG];
    const int lid = get_local_id(0);
    float acc = 0.0f;
    for (int i = lid; i < n; i += WG) acc += v[v_off + i];
    partial[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = WG / 2; stride > 0; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) y[y_off] = partial[0] / (float)n;
}

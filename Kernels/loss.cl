// =================================================================================================
// loss.cl — classification losses (softmax cross-entropy with label smoothing and an ignore index,
// binary cross-entropy with logits), argmax, and the scaled sum the losses end with.
//
// Kernels:
//   softmax_xent_rows       loss[r] = logsumexp(x[r, :]) - sum_c t[r, c] * x[r, c], where
//                           t = (1 - eps) * onehot(label[r]) + eps / classes; 0 when
//                           label[r] == ignore_index                      (1-D range over rows)
//   softmax_xent_backward   dx[r, c] = g * inv_count * (softmax(x[r, :])[c] - t[r, c]); 0 for
//                           ignored rows                                  (1-D range over rows)
//   bce_logits_elements     loss[i] = max(x, 0) - x * t + log1p(exp(-|x|))  (1-D range over n)
//   bce_logits_backward     dx[i] = g * inv_count * (sigmoid(x[i]) - t[i])  (1-D range over n)
//   argmax_rows             y[r] = the first c with x[r, c] maximal, as a float  (1-D over rows)
//   scaled_sum_reduce       y[0] = scale * sum(v[0..n))  (one work-group of size WG, 1-D range WG)
//
// Macros:
//   WG   work-group size of scaled_sum_reduce, a power of two (default 256).
//
// Layout: logits are row-major [rows, classes]; labels are int class indices, validated on the
// host to lie in [0, classes) unless equal to ignore_index (callers without an ignore index pass
// INT_MIN). g is the loss's incoming gradient, a one-element buffer. Every buffer is
// (pointer, ulong offset in elements). The softmax subtracts the row maximum first and the
// smoothed loss is written as log(s) - sum_c t_c (x_c - m) (the t_c sum to 1), so large logits
// neither overflow nor cancel; the binary cross-entropy uses the form that is finite for every x.
// Global sizes are rounded up to the work-group size, so each kernel checks its index.
// =================================================================================================

#ifndef WG
#define WG 256
#endif

#include "reduce.h"

__kernel void softmax_xent_rows(const int rows, const int classes, const float smoothing,
                                const int ignore_index,
                                __global const float* x, const ulong x_off,
                                __global const int* label, const ulong label_off,
                                __global float* loss, const ulong loss_off) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    const int target = label[label_off + r];
    if (target == ignore_index) {
        loss[loss_off + r] = 0.0f;
        return;
    }
    __global const float* row = x + x_off + (ulong)r * classes;
    float m = row[0];
    for (int c = 1; c < classes; ++c) m = fmax(m, row[c]);
    float s = 0.0f, centred = 0.0f;
    for (int c = 0; c < classes; ++c) {
        s += exp(row[c] - m);
        centred += row[c] - m;
    }
    loss[loss_off + r] = log(s) - (1.0f - smoothing) * (row[target] - m) - smoothing / (float)classes * centred;
}

__kernel void softmax_xent_backward(const int rows, const int classes, const float smoothing,
                                    const int ignore_index, const float inv_count,
                                    __global const float* g, const ulong g_off,
                                    __global const float* x, const ulong x_off,
                                    __global const int* label, const ulong label_off,
                                    __global float* dx, const ulong dx_off) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* row = x + x_off + (ulong)r * classes;
    __global float* drow = dx + dx_off + (ulong)r * classes;
    const int target = label[label_off + r];
    if (target == ignore_index) {
        for (int c = 0; c < classes; ++c) drow[c] = 0.0f;
        return;
    }
    float m = row[0];
    for (int c = 1; c < classes; ++c) m = fmax(m, row[c]);
    float s = 0.0f;
    for (int c = 0; c < classes; ++c) s += exp(row[c] - m);
    const float scale = g[g_off] * inv_count;
    const float inv = 1.0f / s;
    const float uniform = smoothing / (float)classes;
    for (int c = 0; c < classes; ++c) {
        const float p = exp(row[c] - m) * inv;
        const float t = (c == target ? 1.0f - smoothing : 0.0f) + uniform;
        drow[c] = scale * (p - t);
    }
}

__kernel void bce_logits_elements(const ulong n,
                                  __global const float* x, const ulong x_off,
                                  __global const float* t, const ulong t_off,
                                  __global float* loss, const ulong loss_off) {
    const ulong i = get_global_id(0);
    if (i >= n) return;
    const float v = x[x_off + i];
    loss[loss_off + i] = fmax(v, 0.0f) - v * t[t_off + i] + log1p(exp(-fabs(v)));
}

__kernel void bce_logits_backward(const ulong n, const float inv_count,
                                  __global const float* g, const ulong g_off,
                                  __global const float* x, const ulong x_off,
                                  __global const float* t, const ulong t_off,
                                  __global float* dx, const ulong dx_off) {
    const ulong i = get_global_id(0);
    if (i >= n) return;
    const float v = x[x_off + i];
    // exp of a non-positive number only, so neither branch overflows.
    const float e = exp(-fabs(v));
    const float sigmoid = v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    dx[dx_off + i] = g[g_off] * inv_count * (sigmoid - t[t_off + i]);
}

__kernel void argmax_rows(const int rows, const int cols,
                          __global const float* x, const ulong x_off,
                          __global float* y, const ulong y_off) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* row = x + x_off + (ulong)r * cols;
    int best = 0;
    float value = row[0];
    for (int c = 1; c < cols; ++c) {
        // Strictly greater: the first of tied maxima wins.
        if (row[c] > value) {
            value = row[c];
            best = c;
        }
    }
    y[y_off + r] = (float)best;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void scaled_sum_reduce(const ulong n, const float scale,
                       __global const float* v, const ulong v_off,
                       __global float* y, const ulong y_off) {
    __local float partial[WG];
    const int lid = get_local_id(0);
    float acc = 0.0f;
    for (ulong i = lid; i < n; i += WG) acc += v[v_off + i];
    partial[lid] = acc;
    tree_sum(partial, lid, WG);
    if (lid == 0) y[y_off] = scale * partial[0];
}

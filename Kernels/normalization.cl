// =================================================================================================
// normalization.cl — batch normalisation over NCHW (training statistics, normalisation, both
// backward passes, running statistics) and layer normalisation over the last axis.
//
// Kernels:
//   bn_stats_partial           per (channel c, chunk k): count, mean and M2 (sum of squared
//                              deviations) of x[:, c, :] - shift_c over chunk k (chunk_len samples)
//                              of the N samples, items along each plane's HW positions, by Welford
//                              per item and Chan's merge across the group
//                              (1-D range of C * chunks work-groups)
//   bn_stats_finalize          mean[c] = shift_c + merged mean, invstd[c] = 1 / sqrt(M2 / (N*HW)
//                              + eps) from the chunk partials (bn_stats_partial's, shifted, or
//                              a convolution's epilogue's, shift 0)          (1-D range over C)
//   bn_invstd_from_var         invstd[c] = 1 / sqrt(var[c] + eps)           (1-D range over C)
//   bn_normalize               y = act((x - mean[c]) * invstd[c] * gamma[c] + beta[c])
//                                                                           (plane range, below)
//   bn_backward_partial        per (c, k): sum(g) and sum(g * (x - mean[c])) over chunk k (samples), with
//                              g = dy * act'(z) and z the pre-activation (recomputed from x)
//                              (1-D range of C * chunks work-groups)
//   bn_backward_finalize       dbeta[c] = sum(dy), dgamma[c] = invstd[c] * sum(dy * (x - mean[c]))
//                                                                           (1-D range over C)
//   bn_backward_dx             dx = gamma * invstd * (g - (dbeta + xhat * dgamma) / (N*HW)),
//                              xhat = (x - mean) * invstd, g as above        (plane range)
//   bn_inference_backward_dx   dx = dy * gamma[c] * invstd[c]                (plane range)
//   bn_running_update          new_mean = (1 - m) * mean + m * batch_mean,
//                              new_var = (1 - m) * var + m * unbiased batch var (1-D range over C)
//   layernorm_forward          per row: mean, invstd = 1 / sqrt(var + eps) (two passes over the
//                              row, shifted by its first element), y = (x - mean) * invstd *
//                              gamma + beta
//                              (1-D range, one work-group per row)
//   layernorm_backward_dx      per row, g = dy * gamma: dx = invstd * (g - mean(g)
//                              - xhat * mean(g * xhat))       (1-D range, one work-group per row)
//   layernorm_backward_params  dgamma[d] = sum_rows dy * xhat, dbeta[d] = sum_rows dy
//                              (1-D range of work-groups, LX columns by LY rows each)
//
// Macros:
//   VW    positions per item of the elementwise kernels: 16 (CPUs, float16) or 1 (GPUs).
//   ACT   the activation fused after batch norm's affine map (training kernels only):
//         ACT_NONE (default), ACT_RELU or ACT_SILU. Fusing saves the activation's launch and
//         its pass over memory forwards, and its gradient's backwards: the backward kernels
//         recompute the pre-activation z = xhat * gamma + beta from x instead of reading y.
// Work-group sizes are launch-time choices (powers of two) read back with get_local_size, and
// every __local scratch array is a kernel argument sized by the host.
//
// Plane range: (ceil(ceil(HW/VW)/L)*L, min(N*C, 32768), ceil(N*C/32768)), local (L, 1, 1): see
// PLANE_CHUNK.
//
// Layout: batch-norm tensors are contiguous [N, C, HW] (HW the product of the spatial axes;
// element (n, c, s) at (n * C + c) * HW + s); per-channel vectors are [C]; chunk partials are
// [C, chunks, 3] (stats) or [C, chunks, 2] (backward). Layer-norm tensors are [rows, D] with
// per-row mean and invstd [rows]. Every buffer is (pointer, ulong offset in elements); indices
// are 32-bit (the host rejects tensors of 2^31 or more elements). Items past the end of the data
// still join every barrier and only skip loads and stores.
//
// Numerics: batch statistics are never formed as E[x^2] - E[x]^2. Each channel is shifted by its
// first element (an actual sample, so |x - shift| is on the scale of the spread, and x - shift is
// exact for nearby values by Sterbenz's lemma), then accumulated by Welford's update and merged
// with Chan's formula, which stay accurate for a mean of 100 and a standard deviation of 0.01.
// A channel of one element gets mean = x exactly, variance 0 and y = beta. The saved mean is a
// float (rounded to half an ulp of |mean|), and bn_normalize and the backward kernels use that
// saved value, as PyTorch does; layernorm_forward normalises with the shifted mean instead.
// =================================================================================================

// The elementwise kernels' 2-D range: dimension 0 the chunk of VW positions [s0, s0 + VW) within
// a plane (HW), dimensions 1 and 2 the plane n*C + c (dim1 + 32768*dim2, within the portable grid
// limit). The channel is then uniform across an item, so its parameters are scalar loads and the
// element loads are contiguous: no per-element division, which a CPU's vector units cannot do.
// VW = 16 (CPUs): an item reads and writes a whole float16 where the plane has 16 positions left
// (POCL's own vectoriser across items made gathers of the earlier 1-D form); VW = 1 (GPUs): one
// element per item, neighbouring items on neighbouring addresses.
#ifndef VW
#define VW 1
#endif
#if VW != 1 && VW != 16
#error "VW must be 1 or 16"
#endif
#define PLANE_CHUNK(base, c, count)                                              \
    const int s0_ = get_global_id(0) * VW;                                       \
    const int plane_ = get_global_id(1) + get_global_id(2) * 32768;              \
    if (s0_ >= HW || plane_ >= N * C) return;                                    \
    const int c = plane_ % C;                                                    \
    const int base = plane_ * HW + s0_;                                          \
    const int count = min(VW, HW - s0_);

#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_SILU 2
#include "reduce.h"

#ifndef ACT
#define ACT ACT_NONE
#endif

// The fused activation of a pre-activation z, scalar and float16 (two names: OpenCL C 1.2 has
// no overloading of user functions).
static inline float bn_act(const float z) {
#if ACT == ACT_RELU
    return fmax(z, 0.0f);
#elif ACT == ACT_SILU
    return z / (1.0f + exp(-z));
#else
    return z;
#endif
}
static inline float16 bn_act16(const float16 z) {
#if ACT == ACT_RELU
    return fmax(z, (float16)(0.0f));
#elif ACT == ACT_SILU
    return z / (1.0f + exp(-z));
#else
    return z;
#endif
}

// dy * act'(z): the gradient reaching the affine map. ReLU passes it where z > 0 (PyTorch's
// threshold_backward); SiLU's derivative is s * (1 + z * (1 - s)) with s = sigmoid(z).
static inline float bn_act_grad(const float dy, const float z) {
#if ACT == ACT_RELU
    return z > 0.0f ? dy : 0.0f;
#elif ACT == ACT_SILU
    const float s = 1.0f / (1.0f + exp(-z));
    return dy * s * (1.0f + z * (1.0f - s));
#else
    return dy;
#endif
}
static inline float16 bn_act_grad16(const float16 dy, const float16 z) {
#if ACT == ACT_RELU
    return select((float16)(0.0f), dy, z > 0.0f);
#elif ACT == ACT_SILU
    const float16 s = 1.0f / (1.0f + exp(-z));
    return dy * s * (1.0f + z * (1.0f - s));
#else
    return dy;
#endif
}

// Sum of 16 lanes in a fixed tree order.
static inline float lane_sum16(const float16 v) {
    const float8 a = v.lo + v.hi;
    const float4 b = a.lo + a.hi;
    const float2 c = b.lo + b.hi;
    return c.x + c.y;
}

__kernel void bn_stats_partial(const int N, const int C, const int HW, const int chunk_len, const int chunks,
                               __global const float* x, const ulong x_off,
                               __global float* partial, const ulong p_off,
                               __local float* s_count, __local float* s_mean, __local float* s_m2) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int group = get_group_id(0);
    const int c = group / chunks;
    const int k = group % chunks;
    const int b0 = k * chunk_len;
    const int b1 = min(N, b0 + chunk_len);
    float n = 0.0f, m = 0.0f, m2 = 0.0f;
    if (c < C) {
        __global const float* xc = x + x_off + (ulong)c * HW;
        const float shift = xc[0];
#if VW == 16
        // Whole float16 chunks update 16 Welford states with one common count; the plane's
        // ragged end goes to the scalar state; the lanes then merge into it in lane order.
        float nv = 0.0f;
        float16 mv = (float16)(0.0f), m2v = (float16)(0.0f);
        for (int b = b0; b < b1; ++b) {
            __global const float* xb = xc + (ulong)b * C * HW;
            for (int s = lid * 16; s < HW; s += lsize * 16) {
                if (s + 16 <= HW) {
                    const float16 v = vload16(0, xb + s) - shift;
                    nv += 1.0f;
                    const float16 delta = v - mv;
                    mv += delta / nv;
                    m2v += delta * (v - mv);
                } else {
                    for (int t = s; t < HW; ++t) {
                        const float v = xb[t] - shift;
                        n += 1.0f;
                        const float delta = v - m;
                        m += delta / n;
                        m2 += delta * (v - m);
                    }
                }
            }
        }
        float lm[16], lm2[16];
        vstore16(mv, 0, lm);
        vstore16(m2v, 0, lm2);
        for (int l = 0; l < 16; ++l) chan_merge(&n, &m, &m2, nv, lm[l], lm2[l]);
#else
        for (int b = b0; b < b1; ++b) {
            __global const float* xb = xc + (ulong)b * C * HW;
            for (int s = lid; s < HW; s += lsize) {
                const float v = xb[s] - shift;
                n += 1.0f;
                const float delta = v - m;
                m += delta / n;
                m2 += delta * (v - m);
            }
        }
#endif
    }
    s_count[lid] = n;
    s_mean[lid] = m;
    s_m2[lid] = m2;
    tree_chan_merge(s_count, s_mean, s_m2, lid, lsize);
    if (lid == 0 && c < C) {
        __global float* out = partial + p_off + (ulong)group * 3;
        out[0] = s_count[0];
        out[1] = s_mean[0];
        out[2] = s_m2[0];
    }
}

__kernel void bn_stats_finalize(const int C, const int HW, const int chunks, const float eps,
                                const int shifted, __global const float* x, const ulong x_off,
                                __global const float* partial, const ulong p_off,
                                __global float* mean, const ulong mean_off,
                                __global float* invstd, const ulong invstd_off) {
    const int c = get_global_id(0);
    if (c >= C) return;
    __global const float* p = partial + p_off + (ulong)c * chunks * 3;
    float n = 0.0f, m = 0.0f, m2 = 0.0f;
    for (int k = 0; k < chunks; ++k) chan_merge(&n, &m, &m2, p[3 * k], p[3 * k + 1], p[3 * k + 2]);
    // The partials of bn_stats_partial are of x - shift_c; a convolution's (convgemm.cl, STATS)
    // are of x itself.
    const float shift = shifted ? x[x_off + (ulong)c * HW] : 0.0f;
    mean[mean_off + c] = shift + m;
    // Biased variance, as the normalisation uses; M2 >= 0 by construction.
    const float var = fmax(m2 / n, 0.0f);
    invstd[invstd_off + c] = 1.0f / sqrt(var + eps);
}

__kernel void bn_invstd_from_var(const int C, const float eps,
                                 __global const float* var, const ulong var_off,
                                 __global float* invstd, const ulong invstd_off) {
    const int c = get_global_id(0);
    if (c >= C) return;
    invstd[invstd_off + c] = 1.0f / sqrt(var[var_off + c] + eps);
}

__kernel void bn_normalize(const int N, const int C, const int HW,
                           __global const float* x, const ulong x_off,
                           __global const float* mean, const ulong mean_off,
                           __global const float* invstd, const ulong invstd_off,
                           __global const float* gamma, const ulong gamma_off,
                           __global const float* beta, const ulong beta_off,
                           __global float* y, const ulong y_off) {
    PLANE_CHUNK(i, c, count)
    const float mu = mean[mean_off + c], inv = invstd[invstd_off + c];
    const float g = gamma[gamma_off + c], b = beta[beta_off + c];
#if VW == 16
    if (count == 16) {
        const float16 xhat = (vload16(0, x + x_off + i) - mu) * inv;
        vstore16(bn_act16(xhat * g + b), 0, y + y_off + i);
        return;
    }
#endif
    for (int t = 0; t < count; ++t) {
        const float xhat = (x[x_off + i + t] - mu) * inv;
        y[y_off + i + t] = bn_act(xhat * g + b);
    }
}

__kernel void bn_backward_partial(const int N, const int C, const int HW, const int chunk_len, const int chunks,
                                  __global const float* dy, const ulong dy_off,
                                  __global const float* x, const ulong x_off,
                                  __global const float* mean, const ulong mean_off,
                                  __global const float* invstd, const ulong invstd_off,
                                  __global const float* gamma, const ulong gamma_off,
                                  __global const float* beta, const ulong beta_off,
                                  __global float* partial, const ulong p_off,
                                  __local float* s_dy, __local float* s_dyx) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int group = get_group_id(0);
    const int c = group / chunks;
    const int k = group % chunks;
    const int b0 = k * chunk_len;
    const int b1 = min(N, b0 + chunk_len);
    float a = 0.0f, b = 0.0f;
    if (c < C) {
        const float mu = mean[mean_off + c];
#if ACT != ACT_NONE
        const float scale = invstd[invstd_off + c] * gamma[gamma_off + c], shift = beta[beta_off + c];
#else
        const float scale = 0.0f, shift = 0.0f;   // unused: act' is 1
#endif
#if VW == 16
        // Whole float16 chunks in lanes, the plane's ragged end in the scalars; lanes summed in
        // a fixed order at the end.
        float16 av = (float16)(0.0f), bv = (float16)(0.0f);
#endif
        for (int n = b0; n < b1; ++n) {
            const int base = (n * C + c) * HW;
#if VW == 16
            for (int s = lid * 16; s < HW; s += lsize * 16) {
                if (s + 16 <= HW) {
                    const float16 d = vload16(0, x + x_off + base + s) - mu;
                    const float16 g = bn_act_grad16(vload16(0, dy + dy_off + base + s), d * scale + shift);
                    av += g;
                    bv += g * d;
                    continue;
                }
                for (int t = s; t < HW; ++t) {
                    const float d = x[x_off + base + t] - mu;
                    const float g = bn_act_grad(dy[dy_off + base + t], d * scale + shift);
                    a += g;
                    b += g * d;
                }
            }
#else
            for (int s = lid; s < HW; s += lsize) {
                const int at = base + s;
                const float d = x[x_off + at] - mu;
                const float g = bn_act_grad(dy[dy_off + at], d * scale + shift);
                a += g;
                b += g * d;
            }
#endif
        }
#if VW == 16
        a += lane_sum16(av);
        b += lane_sum16(bv);
#endif
    }
    s_dy[lid] = a;
    s_dyx[lid] = b;
    tree_sum2(s_dy, s_dyx, lid, lsize);
    if (lid == 0 && c < C) {
        partial[p_off + (ulong)group * 2] = s_dy[0];
        partial[p_off + (ulong)group * 2 + 1] = s_dyx[0];
    }
}

__kernel void bn_backward_finalize(const int C, const int chunks,
                                   __global const float* partial, const ulong p_off,
                                   __global const float* invstd, const ulong invstd_off,
                                   __global float* dgamma, const ulong dgamma_off,
                                   __global float* dbeta, const ulong dbeta_off) {
    const int c = get_global_id(0);
    if (c >= C) return;
    __global const float* p = partial + p_off + (ulong)c * chunks * 2;
    float a = 0.0f, b = 0.0f;
    for (int k = 0; k < chunks; ++k) {
        a += p[2 * k];
        b += p[2 * k + 1];
    }
    dbeta[dbeta_off + c] = a;
    dgamma[dgamma_off + c] = b * invstd[invstd_off + c];
}

__kernel void bn_backward_dx(const int N, const int C, const int HW,
                             __global const float* dy, const ulong dy_off,
                             __global const float* x, const ulong x_off,
                             __global const float* mean, const ulong mean_off,
                             __global const float* invstd, const ulong invstd_off,
                             __global const float* gamma, const ulong gamma_off,
                             __global const float* beta, const ulong beta_off,
                             __global const float* dgamma, const ulong dgamma_off,
                             __global const float* dbeta, const ulong dbeta_off,
                             __global float* dx, const ulong dx_off) {
    PLANE_CHUNK(i, c, count)
    const float mu = mean[mean_off + c], inv = invstd[invstd_off + c];
    const float ga = gamma[gamma_off + c], be = beta[beta_off + c];
    const float db = dbeta[dbeta_off + c], dg = dgamma[dgamma_off + c];
    const float total = (float)N * (float)HW;
#if VW == 16
    if (count == 16) {
        const float16 xhat = (vload16(0, x + x_off + i) - mu) * inv;
        const float16 g = bn_act_grad16(vload16(0, dy + dy_off + i), xhat * ga + be);
        vstore16(ga * inv * (g - (db + xhat * dg) / total), 0, dx + dx_off + i);
        return;
    }
#endif
    for (int t = 0; t < count; ++t) {
        const float xhat = (x[x_off + i + t] - mu) * inv;
        const float g = bn_act_grad(dy[dy_off + i + t], xhat * ga + be);
        dx[dx_off + i + t] = ga * inv * (g - (db + xhat * dg) / total);
    }
}

__kernel void bn_inference_backward_dx(const int N, const int C, const int HW,
                                       __global const float* dy, const ulong dy_off,
                                       __global const float* gamma, const ulong gamma_off,
                                       __global const float* invstd, const ulong invstd_off,
                                       __global float* dx, const ulong dx_off) {
    PLANE_CHUNK(i, c, count)
    const float scale = gamma[gamma_off + c] * invstd[invstd_off + c];
#if VW == 16
    if (count == 16) {
        vstore16(vload16(0, dy + dy_off + i) * scale, 0, dx + dx_off + i);
        return;
    }
#endif
    for (int t = 0; t < count; ++t) dx[dx_off + i + t] = dy[dy_off + i + t] * scale;
}

// The batch variance is recovered from the saved invstd as 1 / invstd^2 - eps (accurate to a
// few ulps of var + eps), clamped at 0 against rounding. Unbiased = biased * count / (count - 1);
// a count of 1 has no unbiased estimate and uses the biased variance (0).
__kernel void bn_running_update(const int C, const float momentum, const float eps, const float count,
                                __global const float* running_mean, const ulong rm_off,
                                __global const float* running_var, const ulong rv_off,
                                __global const float* batch_mean, const ulong bm_off,
                                __global const float* batch_invstd, const ulong bi_off,
                                __global float* new_mean, const ulong nm_off,
                                __global float* new_var, const ulong nv_off) {
    const int c = get_global_id(0);
    if (c >= C) return;
    const float inv = batch_invstd[bi_off + c];
    const float biased = fmax(1.0f / (inv * inv) - eps, 0.0f);
    const float unbiased = count > 1.0f ? biased * (count / (count - 1.0f)) : biased;
    new_mean[nm_off + c] = (1.0f - momentum) * running_mean[rm_off + c] + momentum * batch_mean[bm_off + c];
    new_var[nv_off + c] = (1.0f - momentum) * running_var[rv_off + c] + momentum * unbiased;
}

// Sums v over the work-group into scratch[0] (which every item may then read) and returns it.
// Starts and ends with a barrier so scratch can be reused by the next call.
static inline float group_sum(float v, __local float* scratch) {
    const int lid = get_local_id(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    scratch[lid] = v;
    tree_sum(scratch, lid, get_local_size(0));
    const float total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

__kernel void layernorm_forward(const int rows, const int D, const float eps,
                                __global const float* x, const ulong x_off,
                                __global const float* gamma, const ulong gamma_off,
                                __global const float* beta, const ulong beta_off,
                                __global float* y, const ulong y_off,
                                __global float* mean, const ulong mean_off,
                                __global float* invstd, const ulong invstd_off,
                                __local float* scratch) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int r = get_group_id(0);
    const bool live = r < rows;
    __global const float* xr = x + x_off + (ulong)r * D;
    // Two passes over the row shifted by its first element (x - shift is exact for nearby values,
    // so a mean of 100 with a spread of 0.01 keeps its digits): the mean first, then the squared
    // deviations from it.
    const float shift = live ? xr[0] : 0.0f;
    float s = 0.0f;
    if (live) for (int d = lid; d < D; d += lsize) s += xr[d] - shift;
    const float mu = group_sum(s, scratch) / (float)D;
    float q = 0.0f;
    if (live) {
        for (int d = lid; d < D; d += lsize) {
            const float e = (xr[d] - shift) - mu;
            q += e * e;
        }
    }
    const float inv = 1.0f / sqrt(group_sum(q, scratch) / (float)D + eps);
    if (!live) return;
    __global float* yr = y + y_off + (ulong)r * D;
    for (int d = lid; d < D; d += lsize) {
        yr[d] = ((xr[d] - shift) - mu) * inv * gamma[gamma_off + d] + beta[beta_off + d];
    }
    if (lid == 0) {
        mean[mean_off + r] = shift + mu;
        invstd[invstd_off + r] = inv;
    }
}

__kernel void layernorm_backward_dx(const int rows, const int D,
                                    __global const float* dy, const ulong dy_off,
                                    __global const float* x, const ulong x_off,
                                    __global const float* gamma, const ulong gamma_off,
                                    __global const float* mean, const ulong mean_off,
                                    __global const float* invstd, const ulong invstd_off,
                                    __global float* dx, const ulong dx_off,
                                    __local float* scratch) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int r = get_group_id(0);
    const bool live = r < rows;
    const float mu = live ? mean[mean_off + r] : 0.0f;
    const float inv = live ? invstd[invstd_off + r] : 0.0f;
    __global const float* xr = x + x_off + (ulong)r * D;
    __global const float* dyr = dy + dy_off + (ulong)r * D;
    float a = 0.0f, b = 0.0f;
    if (live) {
        for (int d = lid; d < D; d += lsize) {
            const float g = dyr[d] * gamma[gamma_off + d];
            a += g;
            b += g * (xr[d] - mu) * inv;
        }
    }
    const float mean_g = group_sum(a, scratch) / (float)D;
    const float mean_gx = group_sum(b, scratch) / (float)D;
    if (!live) return;
    __global float* dxr = dx + dx_off + (ulong)r * D;
    for (int d = lid; d < D; d += lsize) {
        const float xhat = (xr[d] - mu) * inv;
        dxr[d] = inv * (dyr[d] * gamma[gamma_off + d] - mean_g - xhat * mean_gx);
    }
}

__kernel void layernorm_backward_params(const int rows, const int D, const int lx_size,
                                        __global const float* dy, const ulong dy_off,
                                        __global const float* x, const ulong x_off,
                                        __global const float* mean, const ulong mean_off,
                                        __global const float* invstd, const ulong invstd_off,
                                        __global float* dgamma, const ulong dgamma_off,
                                        __global float* dbeta, const ulong dbeta_off,
                                        __local float* s_gamma, __local float* s_beta) {
    // Work-group g owns columns [g * LX, g * LX + LX); item (lx, ly) sums rows ly, ly + LY, ...
    const int lid = get_local_id(0);
    const int ly_size = get_local_size(0) / lx_size;
    const int lx = lid % lx_size;
    const int ly = lid / lx_size;
    const int d = get_group_id(0) * lx_size + lx;
    float g = 0.0f, b = 0.0f;
    if (d < D) {
        for (int r = ly; r < rows; r += ly_size) {
            const ulong at = (ulong)r * D + d;
            const float v = dy[dy_off + at];
            g += v * (x[x_off + at] - mean[mean_off + r]) * invstd[invstd_off + r];
            b += v;
        }
    }
    s_gamma[lid] = g;
    s_beta[lid] = b;
    tree_sum2_columns(s_gamma, s_beta, lx, ly, lx_size, ly_size);
    if (ly == 0 && d < D) {
        dgamma[dgamma_off + d] = s_gamma[lx];
        dbeta[dbeta_off + d] = s_beta[lx];
    }
}

// =================================================================================================
// activation.cl — smooth pointwise activations (SiLU, sigmoid, tanh, GELU) and their gradients.
//
// Kernels:
//   activation_forward    y[i] = f(x[i])                            (1-D range, one item per element)
//   activation_backward   dx[i] = dy[i] * f'(x[i])                  (1-D range, one item per element)
//
// Macros:
//   ACT   the activation f: ACT_SILU (default), ACT_SIGMOID, ACT_TANH or ACT_GELU.
//           silu(x)    = x * sigmoid(x)
//           sigmoid(x) = 1 / (1 + exp(-x))
//           tanh(x)
//           gelu(x)    = x/2 * (1 + erf(x / sqrt(2)))        (exact erf form, PyTorch approximate='none')
//
// Layout: every buffer is passed as (pointer, ulong offset in elements); tensors are contiguous,
// so an element index is the same in every operand. The global size may exceed n (rounded up to
// the work-group size): each kernel checks its index against n.
//
// Numerics: exp is only ever taken of -|x|, so no intermediate overflows for large |x| (sigmoid of
// ±100 is exactly 0 or 1, never inf/inf). 1 - sigmoid(x) is computed as sigmoid(-x) and
// 1 - tanh(x)^2 as 4e/(1+e)^2 with e = exp(-2|x|), avoiding cancellation near saturation. GELU uses
// erfc(-x/sqrt(2)) for 1 + erf(x/sqrt(2)) so that the far negative tail keeps its relative accuracy.
// =================================================================================================

#define ACT_SILU 0
#define ACT_SIGMOID 1
#define ACT_TANH 2
#define ACT_GELU 3
#ifndef ACT
#define ACT ACT_SILU
#endif

#define M_SQRT1_2_F 0.70710678118654752f   // 1 / sqrt(2)
#define INV_SQRT_2PI_F 0.39894228040143268f  // 1 / sqrt(2 pi)

// sigmoid(x) (*pos) and sigmoid(-x) = 1 - sigmoid(x) (*neg), both without overflow or
// cancellation. Scalars through pointers, not a float2: a float2 select made POCL's vectoriser give
// up on the item loop ("instruction return type cannot be vectorized"), leaving SiLU and sigmoid
// scalar; inlined, the pointers vanish.
static inline void sigmoid_pair(const float x, float* pos, float* neg) {
    const float e = exp(-fabs(x));
    const float big = 1.0f / (1.0f + e);   // sigmoid(|x|)
    const float small = e * big;           // sigmoid(-|x|)
    *pos = x >= 0.0f ? big : small;
    *neg = x >= 0.0f ? small : big;
}

static inline float act_forward(const float x) {
    float s, t;
#if ACT == ACT_SIGMOID
    sigmoid_pair(x, &s, &t);
    return s;
#elif ACT == ACT_TANH
    return tanh(x);
#elif ACT == ACT_GELU
    return 0.5f * x * erfc(-x * M_SQRT1_2_F);
#else
    sigmoid_pair(x, &s, &t);
    return x * s;
#endif
}

static inline float act_derivative(const float x) {
    float s, t;
#if ACT == ACT_SIGMOID
    sigmoid_pair(x, &s, &t);
    return s * t;
#elif ACT == ACT_TANH
    const float e = exp(-2.0f * fabs(x));
    const float d = 1.0f + e;
    return 4.0f * e / (d * d);
#elif ACT == ACT_GELU
    // Phi(x) + x * phi(x)
    return 0.5f * erfc(-x * M_SQRT1_2_F) + x * INV_SQRT_2PI_F * exp(-0.5f * x * x);
#else
    // d/dx x*s(x) = s(x) * (1 + x * s(-x))
    sigmoid_pair(x, &s, &t);
    return s * (1.0f + x * t);
#endif
}

__kernel void activation_forward(const ulong n,
                                 __global const float* x, const ulong x_off,
                                 __global float* y, const ulong y_off) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = act_forward(x[x_off + i]);
}

__kernel void activation_backward(const ulong n,
                                  __global const float* dy, const ulong dy_off,
                                  __global const float* x, const ulong x_off,
                                  __global float* dx, const ulong dx_off) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    dx[dx_off + i] = dy[dy_off + i] * act_derivative(x[x_off + i]);
}

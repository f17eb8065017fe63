// =================================================================================================
// convrnn.cl — fused ConvLSTM / ConvGRU gate arithmetic over the pre-activations the convs produce.
//
// Kernels: (1-D range over the state elements B*N*H*W, one item per element)
//   lstm_cell_forward    i,f,o = sigmoid, g = tanh; c' = f*c + i*g; h' = o*tanh(c')
//   lstm_cell_backward   d(pre) for the four gates and dc, from dh' and dc'
//   gru_gates_forward    z = sigmoid(pz); rh = sigmoid(pr) * h
//   gru_gates_backward   d(pz, pr) and dh, from dz and d(rh)
//   gru_output_forward   h' = (1 - z) * tanh(p_hat) + z * h      (PyTorch nn.GRU's convention)
//   gru_output_backward  dz, d(p_hat), dh from dh'
// The plain ConvRNN regulator (h' = tanh(pre)) uses the tanh activation kernel.
//
// Macros: none.
//
// Layout: states are NCHW [B, N, H, W]. Gate pre-activations come from a grouped conv with one
// group per state channel, so the G gates of channel n are adjacent: pre is [B, G*N, H, W] with
// channel n*G + k (LSTM: G = 4, k = i, f, o, g; GRU stage 1: G = 2, k = z, r). `hw` is H*W.
// Every buffer is (pointer, ulong element offset). Indices are 32-bit `int` (the host rejects
// 4 * B*N*H*W >= 2^31), so no item divides in 64 bits.
// =================================================================================================

static inline float sigm(const float x) { return 1.0f / (1.0f + exp(-x)); }

// Index of gate k of the state element (b, n, s) in a [B, G*N, HW] tensor.
// 32-bit arithmetic: the host checks that gates * total < 2^31.
static inline int gate_index(const int e, const int n_ch, const int hw, const int gates, const int k) {
    const int bn = e / hw;
    const int s = e - bn * hw;
    const int b = bn / n_ch;
    const int n = bn - b * n_ch;
    return ((b * n_ch + n) * gates + k) * hw + s;
}

__kernel void lstm_cell_forward(const int total, const int n_ch, const int hw,
                                __global const float* pre, const ulong pre_off,
                                __global const float* c, const ulong c_off,
                                __global float* h_out, const ulong h_off,
                                __global float* c_out, const ulong co_off) {
    const int e = get_global_id(0);
    if (e >= total) return;
    const float i = sigm(pre[pre_off + gate_index(e, n_ch, hw, 4, 0)]);
    const float f = sigm(pre[pre_off + gate_index(e, n_ch, hw, 4, 1)]);
    const float o = sigm(pre[pre_off + gate_index(e, n_ch, hw, 4, 2)]);
    const float g = tanh(pre[pre_off + gate_index(e, n_ch, hw, 4, 3)]);
    const float cn = f * c[c_off + e] + i * g;
    c_out[co_off + e] = cn;
    h_out[h_off + e] = o * tanh(cn);
}

__kernel void lstm_cell_backward(const int total, const int n_ch, const int hw,
                                 __global const float* dh, const ulong dh_off,
                                 __global const float* dcn, const ulong dcn_off,
                                 __global const float* pre, const ulong pre_off,
                                 __global const float* c, const ulong c_off,
                                 __global float* dpre, const ulong dpre_off,
                                 __global float* dc, const ulong dc_off) {
    const int e = get_global_id(0);
    if (e >= total) return;
    const int ii = gate_index(e, n_ch, hw, 4, 0), fi = gate_index(e, n_ch, hw, 4, 1);
    const int oi = gate_index(e, n_ch, hw, 4, 2), gi = gate_index(e, n_ch, hw, 4, 3);
    const float i = sigm(pre[pre_off + ii]), f = sigm(pre[pre_off + fi]);
    const float o = sigm(pre[pre_off + oi]), g = tanh(pre[pre_off + gi]);
    const float cp = c[c_off + e];
    const float tc = tanh(f * cp + i * g);
    const float dhe = dh[dh_off + e];
    const float dct = dcn[dcn_off + e] + dhe * o * (1.0f - tc * tc);
    dpre[dpre_off + ii] = dct * g * i * (1.0f - i);
    dpre[dpre_off + fi] = dct * cp * f * (1.0f - f);
    dpre[dpre_off + oi] = dhe * tc * o * (1.0f - o);
    dpre[dpre_off + gi] = dct * i * (1.0f - g * g);
    dc[dc_off + e] = dct * f;
}

__kernel void gru_gates_forward(const int total, const int n_ch, const int hw,
                                __global const float* pre, const ulong pre_off,
                                __global const float* h, const ulong h_off,
                                __global float* z, const ulong z_off,
                                __global float* rh, const ulong rh_off) {
    const int e = get_global_id(0);
    if (e >= total) return;
    z[z_off + e] = sigm(pre[pre_off + gate_index(e, n_ch, hw, 2, 0)]);
    rh[rh_off + e] = sigm(pre[pre_off + gate_index(e, n_ch, hw, 2, 1)]) * h[h_off + e];
}

__kernel void gru_gates_backward(const int total, const int n_ch, const int hw,
                                 __global const float* dz, const ulong dz_off,
                                 __global const float* drh, const ulong drh_off,
                                 __global const float* pre, const ulong pre_off,
                                 __global const float* h, const ulong h_off,
                                 __global float* dpre, const ulong dpre_off,
                                 __global float* dh, const ulong dh_off) {
    const int e = get_global_id(0);
    if (e >= total) return;
    const int zi = gate_index(e, n_ch, hw, 2, 0), ri = gate_index(e, n_ch, hw, 2, 1);
    const float z = sigm(pre[pre_off + zi]);
    const float r = sigm(pre[pre_off + ri]);
    const float d = drh[drh_off + e];
    dpre[dpre_off + zi] = dz[dz_off + e] * z * (1.0f - z);
    dpre[dpre_off + ri] = d * h[h_off + e] * r * (1.0f - r);
    dh[dh_off + e] = d * r;
}

__kernel void gru_output_forward(const int total,
                                 __global const float* z, const ulong z_off,
                                 __global const float* p_hat, const ulong p_off,
                                 __global const float* h, const ulong h_off,
                                 __global float* h_out, const ulong ho_off) {
    const int e = get_global_id(0);
    if (e >= total) return;
    const float ze = z[z_off + e];
    h_out[ho_off + e] = (1.0f - ze) * tanh(p_hat[p_off + e]) + ze * h[h_off + e];
}

__kernel void gru_output_backward(const int total,
                                  __global const float* dho, const ulong dho_off,
                                  __global const float* z, const ulong z_off,
                                  __global const float* p_hat, const ulong p_off,
                                  __global const float* h, const ulong h_off,
                                  __global float* dz, const ulong dz_off,
                                  __global float* dp, const ulong dp_off,
                                  __global float* dh, const ulong dh_off) {
    const int e = get_global_id(0);
    if (e >= total) return;
    const float d = dho[dho_off + e];
    const float ze = z[z_off + e];
    const float hh = tanh(p_hat[p_off + e]);
    const float he = h[h_off + e];
    dz[dz_off + e] = d * (he - hh);
    dp[dp_off + e] = d * (1.0f - ze) * (1.0f - hh * hh);
    dh[dh_off + e] = d * ze;
}

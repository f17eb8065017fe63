// =================================================================================================
// dropout.cl — dropout and stochastic depth with masks from the counter-based Philox4x32-10 RNG,
// so a seed gives the same mask on every device and on the CPU reference.
//
// Kernels:
//   dropout_forward            y[i] = keep(i) ? x[i] * scale : 0     (1-D range, one item per element)
//   stochastic_depth_forward   y[i] = keep(i / per_sample) ? x[i] * scale : 0
//                                                                     (1-D range, one item per element)
//
// Macros: none.
//
// Layout: every buffer is passed as (pointer, ulong offset in elements); tensors are contiguous.
// The global size may exceed the work (rounded up to the work-group size): each kernel checks its
// index.
//
// Random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, SC11; the Random123 constants), keyed
// by the 64-bit seed (key = (seed lo, seed hi)). Draw j of a stream is word j % 4 of the block at
// counter (j / 4 lo, j / 4 hi, stream, 0). Dropout uses stream 0 with j = the element index;
// stochastic depth uses stream 1 with j = the sample index. An element (or sample) is kept when its
// 32-bit draw is >= threshold = round(p * 2^32), computed on the host: an integer comparison, so
// there is no float rounding that two devices could disagree on. The same kernels compute the
// gradients (dy in place of x), regenerating the mask from the seed.
// =================================================================================================

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define STREAM_DROPOUT 0u
#define STREAM_STOCHASTIC_DEPTH 1u

static inline uint4 philox4x32_10(uint4 c, uint2 k) {
    // Unrolled, so that the kernels' bodies are straight-line code POCL vectorises across items.
    _Pragma("unroll")
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k.x += PHILOX_W0;
            k.y += PHILOX_W1;
        }
        const uint hi0 = mul_hi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
        const uint hi1 = mul_hi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
        c = (uint4)(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

// The four draws of block `block` of `stream`.
static inline uint4 philox_block(const ulong block, const uint stream, const uint seed_lo, const uint seed_hi) {
    return philox4x32_10((uint4)((uint)block, (uint)(block >> 32), stream, 0u), (uint2)(seed_lo, seed_hi));
}

// One item per element, each computing its whole Philox block and keeping its word: four times
// the arithmetic of one item per block, but straight-line code that POCL vectorises across items
// (16 per AVX-512 register), where the per-block loop over four stores stayed scalar (measured:
// 2.9 s of a 33.5 s WRN-16-8 profile). A GPU spends the redundant rounds on idle ALUs.
__kernel void dropout_forward(const ulong n, const uint threshold, const float scale,
                              const uint seed_lo, const uint seed_hi,
                              __global const float* x, const ulong x_off,
                              __global float* y, const ulong y_off) {
    const ulong i = get_global_id(0);
    if (i >= n) return;
    const uint4 r = philox_block(i >> 2, STREAM_DROPOUT, seed_lo, seed_hi);
    // Word i % 4 by two selects on its bits: a ?: chain becomes a switch, which stops the
    // vectoriser ("loop contains a switch statement").
    const uint odd = (uint)i & 1u, high = (uint)i & 2u;
    const uint draw = select(select(r.x, r.y, odd), select(r.z, r.w, odd), high);
    y[y_off + i] = draw >= threshold ? x[x_off + i] * scale : 0.0f;
}

__kernel void stochastic_depth_forward(const ulong n, const ulong per_sample, const uint threshold, const float scale,
                                       const uint seed_lo, const uint seed_hi,
                                       __global const float* x, const ulong x_off,
                                       __global float* y, const ulong y_off) {
    const ulong i = get_global_id(0);
    if (i >= n) return;
    const ulong sample = i / per_sample;
    const uint4 r = philox_block(sample / 4, STREAM_STOCHASTIC_DEPTH, seed_lo, seed_hi);
    const uint odd = (uint)sample & 1u, high = (uint)sample & 2u;   // selects, as above
    const uint draw = select(select(r.x, r.y, odd), select(r.z, r.w, odd), high);
    y[y_off + i] = draw >= threshold ? x[x_off + i] * scale : 0.0f;
}

// =================================================================================================
// embedding.cl — token-embedding lookup and its deterministic scatter-add gradient.
//
// Kernels:
//   embedding_forward    y[t, d] = table[ids[t], d]                 (1-D range over tokens * dim)
//   embedding_backward   dtable[v, d] = sum over the tokens t with ids[t] == v, in increasing t,
//                        of dy[t, d]; 0 for ids that never occur    (1-D range over vocab * dim)
//
// Macros: none.
//
// Layout: the table is row-major [vocab, dim]; ids is an int array of tokens, already validated
// on the host to lie in [0, vocab); y and dy are row-major [tokens, dim]. The backward pass reads
// a host-built inverse index instead of scattering with float atomics: starts[v]..starts[v + 1]
// is the range of `positions` listing, in increasing order, the tokens whose id is v. Each output
// element has one owner that adds its terms in a fixed order, so repeated ids accumulate exactly
// the same way on every run. Every buffer is (pointer, ulong offset in elements); indices are 32-bit
// `int` (the host rejects a table or dy of 2^31 or more elements), so no item divides in 64 bits.
// Global sizes are rounded up to the work-group size, so each kernel checks its index.
// =================================================================================================

__kernel void embedding_forward(const int n, const int dim,
                                __global const float* table, const ulong table_off,
                                __global const int* ids, const ulong ids_off,
                                __global float* y, const ulong y_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int t = i / dim;
    const int d = i - t * dim;
    y[y_off + i] = table[table_off + ids[ids_off + t] * dim + d];
}

__kernel void embedding_backward(const int n, const int dim,
                                 __global const float* dy, const ulong dy_off,
                                 __global const int* starts, const ulong starts_off,
                                 __global const int* positions, const ulong positions_off,
                                 __global float* dtable, const ulong dtable_off) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int v = i / dim;
    const int d = i - v * dim;
    const int first = starts[starts_off + v];
    const int last = starts[starts_off + v + 1];
    float acc = 0.0f;
    for (int k = first; k < last; ++k) acc += dy[dy_off + positions[positions_off + k] * dim + d];
    dtable[dtable_off + i] = acc;
}

// =================================================================================================
// reduce.h — the work-group tree reductions shared by the kernel families. A kernel file takes it
// with an include directive naming reduce.h; KernelSources inlines it (embedded, or from
// CLOVER_KERNEL_DIR/include), so it is part of every program's source text and of its cache key.
//
// Functions (every item of the work-group must call them: they hold barriers):
//   tree_sum(s, lid, n)                   s[0] = s[0] + ... + s[n-1]
//   tree_sum2(a, b, lid, n)               the same over two arrays at once
//   tree_sum_rows(s, lid, n, rows)        the same over `rows` arrays at once, row r at s + r * n
//                                         (a [rows][n] local array): s[r * n] = sum of row r.
//                                         rows should be a compile-time constant (the row loop
//                                         unrolls)
//   tree_max(s, lid, n)                   s[0] = fmax(s[0], ..., s[n-1]) (fmax: a NaN loses to
//                                         any number)
//   tree_sum_columns(s, lx, ly, lx_size, ly_size)
//                                         s[lx] = sum over ly of s[ly * lx_size + lx]: the columns
//                                         of an [ly_size, lx_size] tile, item (lx, ly) at
//                                         lid = ly * lx_size + lx
//   tree_sum2_columns(a, b, lx, ly, lx_size, ly_size)
//   tree_argmax_columns(value, index, lx, ly, lx_size, ly_size)
//                                         (value[lx], index[lx]) = the column's best pair by
//                                         max_replaces; index < 0 marks an empty slot
//   tree_chan_merge(count, mean, m2, lid, n)
//                                         (count[0], mean[0], m2[0]) = the Chan merge of the n
//                                         (count, mean, M2) summaries (chan_merge below)
// Helpers (no barriers): max_replaces(v, r, best, best_r), the argmax order: NaN beats every
// number, a larger value wins, equal values (or two NaNs) go to the lower index;
// chan_merge(&n, &m, &m2, nb, mb, m2b), Chan et al.'s merge of two (count, mean, M2) summaries.
//
// n and ly_size must be powers of two. Each begins with a barrier (the callers' stores become
// visible) and ends with one (the result is visible to every item). An item that refills the
// scratch after reading the result (its own slot, before the next call) needs a barrier between
// every item's read and the refill: slot 0 is both the result and item 0's slot (attention.cl's
// softmax, normalization.cl's group_sum). The combining order is fixed (a halving tree: slot i
// takes slot i + stride), so results are deterministic.
// =================================================================================================

#ifndef CLOVER_REDUCE_H
#define CLOVER_REDUCE_H

static inline void tree_sum(__local float* s, const int lid, const int n) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        if (lid < stride) s[lid] += s[lid + stride];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

static inline void tree_sum2(__local float* a, __local float* b, const int lid, const int n) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        if (lid < stride) {
            a[lid] += a[lid + stride];
            b[lid] += b[lid + stride];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

static inline void tree_sum_rows(__local float* s, const int lid, const int n, const int rows) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        if (lid < stride) {
            #pragma unroll
            for (int r = 0; r < rows; ++r) s[r * n + lid] += s[r * n + lid + stride];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

static inline void tree_max(__local float* s, const int lid, const int n) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        if (lid < stride) s[lid] = fmax(s[lid], s[lid + stride]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

static inline void tree_sum_columns(__local float* s, const int lx, const int ly, const int lx_size, const int ly_size) {
    barrier(CLK_LOCAL_MEM_FENCE);
    const int lid = ly * lx_size + lx;
    for (int stride = ly_size / 2; stride > 0; stride >>= 1) {
        if (ly < stride) s[lid] += s[lid + stride * lx_size];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

static inline void tree_sum2_columns(__local float* a, __local float* b, const int lx, const int ly, const int lx_size,
                              const int ly_size) {
    barrier(CLK_LOCAL_MEM_FENCE);
    const int lid = ly * lx_size + lx;
    for (int stride = ly_size / 2; stride > 0; stride >>= 1) {
        if (ly < stride) {
            a[lid] += a[lid + stride * lx_size];
            b[lid] += b[lid + stride * lx_size];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

static inline bool max_replaces(const float v, const int r, const float best, const int best_r) {
    if (r < 0) return false;
    if (best_r < 0) return true;
    if (isnan(v)) return !isnan(best) || r < best_r;
    if (isnan(best)) return false;
    return v > best || (v == best && r < best_r);
}

static inline void tree_argmax_columns(__local float* value, __local int* index, const int lx, const int ly,
                                       const int lx_size, const int ly_size) {
    barrier(CLK_LOCAL_MEM_FENCE);
    const int lid = ly * lx_size + lx;
    for (int stride = ly_size / 2; stride > 0; stride >>= 1) {
        if (ly < stride) {
            const float v = value[lid + stride * lx_size];
            const int r = index[lid + stride * lx_size];
            if (max_replaces(v, r, value[lid], index[lid])) {
                value[lid] = v;
                index[lid] = r;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

// (n, m, m2) absorbs (nb, mb, m2b); an empty summary (count 0) on either side is exact.
static inline void chan_merge(float* n, float* m, float* m2, const float nb, const float mb, const float m2b) {
    if (nb == 0.0f) return;
    if (*n == 0.0f) {
        *n = nb;
        *m = mb;
        *m2 = m2b;
        return;
    }
    const float total = *n + nb;
    const float delta = mb - *m;
    const float wb = nb / total;
    *m += delta * wb;
    *m2 += m2b + delta * delta * (*n * wb);
    *n = total;
}

static inline void tree_chan_merge(__local float* count, __local float* mean, __local float* m2, const int lid,
                                   const int n) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = n / 2; stride > 0; stride >>= 1) {
        if (lid < stride) {
            // An empty partner leaves the slot as it is (chan_merge's early return). Testing it
            // before the other loads also keeps bn_stats_partial at 31 NVPTX registers on sm_80,
            // within the 32 that let 8 work-groups of 256 reside (a plain call took 34: 6 groups).
            const float nb = count[lid + stride];
            if (nb != 0.0f) {
                float an = count[lid], am = mean[lid], am2 = m2[lid];
                chan_merge(&an, &am, &am2, nb, mean[lid + stride], m2[lid + stride]);
                count[lid] = an;
                mean[lid] = am;
                m2[lid] = am2;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

#endif

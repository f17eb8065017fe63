// =================================================================================================
// reduction.cl — sums, maxima and broadcasts along one axis group of a contiguous tensor.
//
// Kernels:
//   reduce_sum        y[o, c, i] = scale * sum(x[o, r, i] for r in chunk c of [0, extent))
//                     (1-D range of work-groups; see "Tiles" below)
//   reduce_max        y[o, i] = max_r x[o, r, i], arg[o, i] = first r reaching it, as a float
//                     (1-D range of work-groups, same tiles as reduce_sum with one chunk)
//   max_backward      dx[o, r, i] = (r == arg[o, i]) ? dy[o, i] : 0     (1-D range over dx)
//   broadcast_expand  y[o, r, i] = x[o, i]                               (1-D range over y)
//
// Macros: none set by the host (TILE_SETUP below is a local shorthand). The work-group shape is
// a launch-time choice read back with get_local_size, so one compiled program serves every shape.
//
// Layout: every operand is a contiguous row-major tensor seen as [outer, extent, inner], the
// host having merged the axes before, at and after the reduced group; a reduction over several
// axis groups is a sequence of launches. Every buffer is (pointer, ulong offset in elements).
// Indices are 32-bit: the host rejects tensors of 2^31 or more elements.
//
// Tiles (reduce_sum, reduce_max): a work-group of LX * LY items (both powers of two; LX is the
// lx_size argument, LY = local size / LX; local id lid = ly * LX + lx) owns LX consecutive inner
// positions of one (outer, chunk) pair: work-group g covers inner tile g % tiles and pair
// g / tiles, with tiles = ceil(inner / LX). Each item walks its chunk's r with stride LY, so for
// inner == 1 (LX == 1) neighbouring items read neighbouring addresses, and for inner >= LX
// neighbouring items read neighbouring i. The LY partial results are then combined by a tree in
// local memory. Items past the end of inner still join every barrier; they only skip loads and
// stores. Splitting a long extent into chunks (reduce_sum) gives a large reduction over few
// outputs enough work-groups and keeps each item's serial float sum short; the host reduces the
// chunk partials with a second launch.
// =================================================================================================

// One work-group's position: which inner index this item owns, which (outer, chunk) pair the
// group works on, and the item's lane along inner (lx) and along the reduced extent (ly).
#include "reduce.h"

#define TILE_SETUP                                                                  \
    const int lid = get_local_id(0);                                                \
    const int lsize = get_local_size(0);                                            \
    const int ly_size = lsize / lx_size;                                            \
    const int lx = lid % lx_size;                                                   \
    const int ly = lid / lx_size;                                                   \
    const int tiles = (inner + lx_size - 1) / lx_size;                              \
    const int group = get_group_id(0);                                              \
    const int pair = group / tiles;                                                 \
    const int i = (group % tiles) * lx_size + lx;

__kernel void reduce_sum(const int outer, const int extent, const int inner,
                         const int chunk_len, const int chunks, const float scale, const int lx_size,
                         __global const float* x, const ulong x_off,
                         __global float* y, const ulong y_off,
                         __local float* scratch) {
    TILE_SETUP
    const int o = pair / chunks;
    const int c = pair % chunks;
    const int r0 = c * chunk_len;
    const int r1 = min(extent, r0 + chunk_len);
    float acc = 0.0f;
    if (o < outer && i < inner) {
        __global const float* base = x + x_off + (ulong)o * extent * inner + i;
        for (int r = r0 + ly; r < r1; r += ly_size) acc += base[(ulong)r * inner];
    }
    scratch[lid] = acc;
    tree_sum_columns(scratch, lx, ly, lx_size, ly_size);
    if (ly == 0 && o < outer && i < inner) y[y_off + (ulong)pair * inner + i] = scratch[lx] * scale;
}

// The running best of each item and the tree across items compare by reduce.h's max_replaces:
// NaN beats every number (the maximum propagates NaN), a larger value wins, and among equal
// values (or two NaNs) the lower index wins. best_r < 0 marks "no element seen yet".
__kernel void reduce_max(const int outer, const int extent, const int inner, const int lx_size,
                         __global const float* x, const ulong x_off,
                         __global float* y, const ulong y_off,
                         __global float* arg, const ulong arg_off,
                         __local float* best_value, __local int* best_index) {
    TILE_SETUP
    const int o = pair;
    float best = 0.0f;
    int best_r = -1;
    if (o < outer && i < inner) {
        __global const float* base = x + x_off + (ulong)o * extent * inner + i;
        for (int r = ly; r < extent; r += ly_size) {
            const float v = base[(ulong)r * inner];
            if (max_replaces(v, r, best, best_r)) { best = v; best_r = r; }
        }
    }
    best_value[lid] = best;
    best_index[lid] = best_r;
    tree_argmax_columns(best_value, best_index, lx, ly, lx_size, ly_size);
    if (ly == 0 && o < outer && i < inner) {
        y[y_off + (ulong)o * inner + i] = best_value[lx];
        arg[arg_off + (ulong)o * inner + i] = (float)best_index[lx];
    }
}

__kernel void max_backward(const int outer, const int extent, const int inner,
                           __global const float* dy, const ulong dy_off,
                           __global const float* arg, const ulong arg_off,
                           __global float* dx, const ulong dx_off) {
    const int n = outer * extent * inner;
    const int gid = get_global_id(0);
    if (gid >= n) return;
    const int i = gid % inner;
    const int r = (gid / inner) % extent;
    const int o = gid / (inner * extent);
    const int k = o * inner + i;
    dx[dx_off + gid] = (r == (int)arg[arg_off + k]) ? dy[dy_off + k] : 0.0f;
}

__kernel void broadcast_expand(const int outer, const int extent, const int inner,
                               __global const float* x, const ulong x_off,
                               __global float* y, const ulong y_off) {
    const int n = outer * extent * inner;
    const int gid = get_global_id(0);
    if (gid >= n) return;
    const int i = gid % inner;
    const int o = gid / (inner * extent);
    y[y_off + gid] = x[x_off + (ulong)o * inner + i];
}

import CloverKernels
import CloverRuntime

// The specialised OpenCL paths of the conv2d family (see Convolution.swift for the op, its shape
// rule, CPU reference and the general im2col path). `Convolution2D`, `Convolution2DBackwardData` and
// `Convolution2DBackwardWeight` each pick a path with `Convolution2DGeometry.algorithm`, so one shape always takes
// the same path forward and backward:
//
//   pointwiseGEMM  1x1 kernel, stride 1, padding 0 (any dilation, which a 1x1 kernel ignores),
//                  unless its groups are thin (below). The NCHW input of one sample already is the
//                  [C, H·W] column matrix, so every pass is CLBlast GEMM with no im2col / col2im
//                  copy, a fixed number of launches whatever the batch (see the MARK below): one
//                  GEMM over the batch, or a transpose to the wide [C, N·P] layout, one GEMM and a
//                  transpose back.
//                  1x1 with stride 2 (ResNet projection shortcuts) stays on im2colGEMM, whose im2col
//                  of a 1x1 kernel is exactly the strided gather such a shortcut needs.
//   depthwise      groups == C == O (channel multiplier 1), square 3x3 or 5x5 kernel, stride 1 or 2
//                  (the same on both axes), "same" padding K/2, dilation 1: Kernels/depthwise.cl.
//   groupedDirect  groups > 1 with at most 16 input and 16 output channels per group ("thin"):
//                  3x3 kernels with stride 1 or 2, padding 1, dilation 1, when not depthwise
//                  (ResNeXt's 4 to 16 per group), and 1x1 kernels with stride 1, padding 0 (the
//                  RegNet cell's N groups of 2 channels): Kernels/grouped.cl. Per-group GEMMs that
//                  thin (M = O/G, K = 9·C/G or C/G) waste most of a GEMM tile, and im2col would
//                  write 9× the input.
//   im2colGEMM     everything else (dense kxk, the 7x7 stem, dilation, large groups, odd padding).
//
// That rule names a shape's class; which algorithm actually runs a pass is chosen per geometry and
// pass by ConvAlgorithmSelection (ConvolutionSelection.swift): measured (`clover tune conv`,
// `clover train --autotune`) among the class's path, im2colGEMM and implicitGEMM
// (ConvolutionImplicitGEMM.swift, Kernels/convgemm.cl, any geometry), else a heuristic default —
// on GPUs the class's path, implicitGEMM's tiled kernels for the im2colGEMM class; on CPUs
// implicitGEMM's vector kernels wherever the output planes have at least 4 pixels.
//
// The direct kernels are compiled per (KH, KW, SH, SW, PH, PW) so their tap loops unroll.

/// Which OpenCL implementation runs a pass of a convolution.
///
/// ``ConvAlgorithmSelection`` chooses one per geometry and pass;
/// ``Convolution2DParameters/algorithm(input:weight:)`` gives the rules for
/// which shapes may take the specialised paths.
public enum ConvAlgorithm: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// 1x1, stride 1, padding 0: CLBlast GEMM straight on the NCHW tensors.
    case pointwiseGEMM
    /// One 3x3 or 5x5 filter per channel, stride 1 or 2, "same" padding: `Kernels/depthwise.cl`.
    case depthwise
    /// Grouped 3x3 (stride 1 or 2, padding 1) or 1x1 (stride 1, padding 0), at most 16 channels
    /// per group: `Kernels/grouped.cl`.
    case groupedDirect
    /// The general path: im2col (`Kernels/conv.cl`) and CLBlast GEMM.
    case im2colGEMM
    /// Implicit GEMM (`Kernels/convgemm.cl`): any geometry, operands gathered
    /// from the tensors, with one of ``ConvGemmParameters/searchSpace``.
    case implicitGEMM

    public var description: String { rawValue }
}

extension Convolution2DParameters {
    /// The shape class of an input `[N, C, H, W]` and a weight
    /// `[O, C/groups, KH, KW]`: the specialised path it may take, or
    /// ``ConvAlgorithm/im2colGEMM`` for the general class, which runs
    /// ``ConvAlgorithm/implicitGEMM`` or im2col + CLBlast as
    /// ``ConvAlgorithmSelection`` chooses (measured, or its heuristic):
    ///
    /// - ``ConvAlgorithm/pointwiseGEMM``: a 1x1 kernel with stride 1 and
    ///   padding 0 (any dilation), unless groups > 1 with at most 16 input
    ///   and 16 output channels per group, which takes the grouped kernels.
    /// - ``ConvAlgorithm/depthwise``: `groups == C == O`, a 3x3 or 5x5
    ///   kernel, equal strides of 1 or 2, padding `K/2`, dilation 1.
    /// - ``ConvAlgorithm/groupedDirect``: otherwise, `groups > 1` with at
    ///   most 16 input and 16 output channels per group, and either a 3x3
    ///   kernel with equal strides of 1 or 2, padding 1 and dilation 1, or a
    ///   1x1 kernel with stride 1 and padding 0.
    /// - ``ConvAlgorithm/im2colGEMM``: everything else.
    ///
    /// The CPU reference ignores the choice: it covers every configuration.
    ///
    /// - Throws: a ``CloverError`` naming `conv2d` when the shapes or
    ///   parameters are invalid.
    public func algorithm(input: [Int], weight: [Int]) throws -> ConvAlgorithm {
        try geometry(input: input, weight: weight, op: "conv2d", shapes: [input, weight]).algorithm
    }
}

/// The largest channel count per group (input and output) that takes the
/// grouped direct kernels; beyond it per-group GEMMs are thick enough for CLBlast.
let groupedDirectMaxChannelsPerGroup = 16

extension Convolution2DGeometry {
    /// The dispatch rule documented on ``Convolution2DParameters/algorithm(input:weight:)``.
    var algorithm: ConvAlgorithm {
        if isPointwise {
            // Thin groups (the RegNet cell's N groups of 2 channels) would be
            // one CLBlast call per sample of GEMMs a few rows deep.
            return hasThinGroups ? .groupedDirect : .pointwiseGEMM
        }
        if fitsDepthwiseKernels { return .depthwise }
        if fitsGroupedKernels { return .groupedDirect }
        return .im2colGEMM
    }

    /// A 1x1 kernel with stride 1 and padding 0 (any dilation, any groups):
    /// the tensors themselves are GEMM operands.
    var isPointwise: Bool {
        let s = parameters
        return kh == 1 && kw == 1 && s.strideH == 1 && s.strideW == 1 && s.paddingH == 0 && s.paddingW == 0
    }

    /// More than one group, with at most ``groupedDirectMaxChannelsPerGroup``
    /// input and output channels in each.
    var hasThinGroups: Bool {
        groups > 1 && cg <= groupedDirectMaxChannelsPerGroup && og <= groupedDirectMaxChannelsPerGroup
    }

    /// One square 3x3 or 5x5 filter per channel, equal strides of 1 or 2,
    /// padding `K/2`, no dilation: what `depthwise.cl` computes.
    var fitsDepthwiseKernels: Bool {
        let s = parameters
        return groups == c && groups == o && kh == kw && (kh == 3 || kh == 5) && hasSquareUnitOrDoubleStride
            && s.dilationH == 1 && s.dilationW == 1 && s.paddingH == kh / 2 && s.paddingW == kw / 2
    }

    /// Thin groups with a 3x3 kernel (equal strides of 1 or 2, padding 1, no
    /// dilation) or a pointwise kernel: what `grouped.cl` computes.
    var fitsGroupedKernels: Bool {
        let s = parameters
        guard hasThinGroups else { return false }
        if isPointwise { return true }
        return kh == 3 && kw == 3 && hasSquareUnitOrDoubleStride && s.dilationH == 1 && s.dilationW == 1
            && s.paddingH == 1 && s.paddingW == 1
    }

    private var hasSquareUnitOrDoubleStride: Bool {
        parameters.strideH == parameters.strideW && (parameters.strideH == 1 || parameters.strideH == 2)
    }

    /// The direct kernels take N and O as `int` too (the im2col path never does).
    func checkDirectKernelLimits(op: String, shapes: [[Int]], on context: OpenCLContext) throws {
        try checkKernelLimits(op: op, shapes: shapes, on: context)
        // depthwise_backward_weight walks the N·OH·OW positions in 32-bit math.
        guard n <= Int(Int32.max), o <= Int(Int32.max), o * cg * kh * kw <= Int(Int32.max),
              n * oh * ow <= Int(Int32.max) else {
            throw CloverError.unsupported(op: op, shapes: shapes, device: context.device.description,
                                          reason: "a size exceeds the kernels' 32-bit int parameters")
        }
    }
}

// MARK: pointwiseGEMM

// Every pass below makes a fixed number of launches whatever the batch size:
//   P = 1 (squeeze-and-excitation on [N, C, 1, 1], a linear layer in
//         disguise): the tensors are the [N, C] and [N, O] matrices, so each
//         pass is one GEMM over the batch (strided-batched over the groups).
//   N = 1: the sample's [C, P] is the column matrix, one GEMM (per group).
//   otherwise forward and data gradient, groups 1: one GEMM strided-batched
//         over the samples with the weight at stride 0, unless CLBlast would
//         take its allocating indirect batched path for the shape; then, and
//         for groups > 1, the samples are relaid out as the wide [C, N·P]
//         (one transpose launch), one GEMM per pass, and the result is
//         transposed back. A wide matrix too wide for a GPU grid (N·P beyond
//         65,535 tiles of 32) falls back to one strided-batched call per group.
//   weight gradient: dW = dY' · X'ᵀ over the wide [O, N·P] and [C, N·P]
//         relayouts: one GEMM summing over all samples and pixels (a
//         strided-batched GEMM cannot reduce over its batch, and a batch of
//         per-sample products plus a reduction would need an [N, O, C]
//         scratch). The relayouts cost one launch each and no atomics, so
//         results are deterministic.

/// The `[N, R, P]` tensor `v` as the wide `[R, N·P]` matrix (row `r` holds
/// the samples' rows `r` one after another): one transpose launch into a
/// new buffer.
private func wideRelayout(_ context: OpenCLContext, _ v: BufferView, samples: Int, rows: Int, pixels: Int) throws -> BufferView {
    let wide = try context.allocateView(count: samples * rows * pixels)
    try transposeMiddleAxes(v, dims: [1, samples, rows, pixels], into: wide, on: context)
    return wide
}

/// The most columns a wide [R, N·P] GEMM may have: CLBlast puts a GEMM's
/// columns in grid dimension 1 in tiles of 32 or more, and GPU grids allow
/// 65,535 groups there.
private let widestRelayoutColumns = 65_535 * 32

/// Whether a pass with several samples runs strided-batched over them (per
/// group) instead of through the wide relayout: where CLBlast would not
/// allocate temporaries on the call (see ``clblastBatchedGemmAllocates``)
/// and groups == 1, or where the wide matrix would be too wide for a GPU grid.
private func batchesOverSamples(_ context: OpenCLContext, _ g: Convolution2DGeometry, transposeA: Bool,
                                m: Int, n: Int, k: Int, lda: Int) throws -> Bool {
    if g.n * g.p > widestRelayoutColumns { return true }
    if let forced = context.executionOptions.pointwiseSampleBatch { return forced }
    return try g.groups == 1 && !clblastBatchedGemmAllocates(context, transposeA: transposeA, transposeB: false,
                                                             m: m, n: n, k: k, lda: lda, ldb: n, ldc: n)
}

/// `y = W · x` for a 1x1, stride-1, padding-0 convolution (bias not included).
func pointwiseForward(_ context: OpenCLContext, _ g: Convolution2DGeometry,
                      x: BufferView, w: BufferView, y: BufferView) throws {
    try pointwiseProduct(context, g, transposeWeight: false, w: w, input: x, output: y)
}

/// `dx = Wᵀ · dy` for a 1x1, stride-1, padding-0 convolution. Every input
/// pixel is read by exactly one output pixel, so the GEMM writes all of dx.
func pointwiseBackwardData(_ context: OpenCLContext, _ g: Convolution2DGeometry,
                           dy: BufferView, w: BufferView, dx: BufferView) throws {
    try pointwiseProduct(context, g, transposeWeight: true, w: w, input: dy, output: dx)
}

/// `output = op(W_g) · input` per group of a 1x1, stride-1 convolution: the
/// forward pass (op the identity; input x with C channels, output y with O)
/// or the data gradient (op the transpose; input dy with O, output dx with C).
/// The route depends on the shape, never on a loop over samples.
private func pointwiseProduct(_ context: OpenCLContext, _ g: Convolution2DGeometry, transposeWeight t: Bool,
                              w: BufferView, input: BufferView, output: BufferView) throws {
    // Channels per group and in all, and elements per sample, of each side.
    let (inGroup, outGroup) = t ? (g.og, g.cg) : (g.cg, g.og)
    let (inAll, outAll) = t ? (g.o, g.c) : (g.c, g.o)
    let (inSample, outSample) = t ? (g.outputPerSample, g.inputPerSample) : (g.inputPerSample, g.outputPerSample)
    if g.p == 1 {
        // Out[:, g] (N × outGroup) = In[:, g] (N × inGroup) · op(W_g)ᵀ: one GEMM over the batch.
        return try clblastGemm(context, transposeA: false, transposeB: !t, m: g.n, n: outGroup, k: inGroup, alpha: 1,
                               a: input, lda: inAll, strideA: inGroup,
                               b: w, ldb: g.cg, strideB: g.og * g.cg,
                               beta: 0, c: output, ldc: outAll, strideC: outGroup, batch: g.groups)
    }
    if g.n == 1 {
        // Out_g (outGroup × P) = op(W_g) · In_g (inGroup × P), batched over the groups.
        return try clblastGemm(context, transposeA: t, transposeB: false, m: outGroup, n: g.p, k: inGroup, alpha: 1,
                               a: w, lda: g.cg, strideA: g.og * g.cg,
                               b: input, ldb: g.p, strideB: inGroup * g.p,
                               beta: 0, c: output, ldc: g.p, strideC: outGroup * g.p, batch: g.groups)
    }
    if try batchesOverSamples(context, g, transposeA: t, m: outGroup, n: g.p, k: inGroup, lda: g.cg) {
        // Out[n, g] = op(W_g) · In[n, g] for every sample in one call per
        // group (the weight at stride 0).
        for group in 0..<g.groups {
            try clblastGemm(context, transposeA: t, transposeB: false, m: outGroup, n: g.p, k: inGroup, alpha: 1,
                            a: w.slice(offset: group * g.og * g.cg, count: g.og * g.cg), lda: g.cg, strideA: 0,
                            b: input.slice(offset: group * inGroup * g.p, count: input.count - group * inGroup * g.p),
                            ldb: g.p, strideB: inSample,
                            beta: 0, c: output.slice(offset: group * outGroup * g.p,
                                                     count: output.count - group * outGroup * g.p),
                            ldc: g.p, strideC: outSample, batch: g.n)
        }
        return
    }
    // Out' (outAll × N·P) = op(W) · In' (inAll × N·P), per group, then [O, N, P] → [N, O, P].
    let cols = g.n * g.p
    let wideIn = try wideRelayout(context, input, samples: g.n, rows: inAll, pixels: g.p)
    let wideOut = try context.allocateView(count: outAll * cols)
    try clblastGemm(context, transposeA: t, transposeB: false, m: outGroup, n: cols, k: inGroup, alpha: 1,
                    a: w, lda: g.cg, strideA: g.og * g.cg,
                    b: wideIn, ldb: cols, strideB: inGroup * cols,
                    beta: 0, c: wideOut, ldc: cols, strideC: outGroup * cols, batch: g.groups)
    try transposeMiddleAxes(wideOut, dims: [1, outAll, g.n, g.p], into: output, on: context)
}

/// `dW = Σₙ dy[n] · x[n]ᵀ` for a 1x1, stride-1, padding-0 convolution: one
/// GEMM whose inner dimension runs over every sample and pixel.
func pointwiseBackwardWeight(_ context: OpenCLContext, _ g: Convolution2DGeometry,
                             dy: BufferView, x: BufferView, dw: BufferView) throws {
    // beta = 0 throughout: CLBlast never reads dW, so a recycled buffer's
    // garbage cannot leak in.
    if g.p == 1 {
        // dW_g (O/G × C/G) = dY[:, g]ᵀ (O/G × N) · X[:, g] (N × C/G).
        return try clblastGemm(context, transposeA: true, transposeB: false, m: g.og, n: g.cg, k: g.n, alpha: 1,
                               a: dy, lda: g.o, strideA: g.og,
                               b: x, ldb: g.c, strideB: g.cg,
                               beta: 0, c: dw, ldc: g.cg, strideC: g.og * g.cg, batch: g.groups)
    }
    // dW_g (O/G × C/G) = dY'_g (O/G × N·P) · X'_gᵀ (N·P × C/G); with one
    // sample the tensors already are the wide matrices.
    let cols = g.n * g.p
    let wideDY = g.n == 1 ? dy : try wideRelayout(context, dy, samples: g.n, rows: g.o, pixels: g.p)
    let wideX = g.n == 1 ? x : try wideRelayout(context, x, samples: g.n, rows: g.c, pixels: g.p)
    try clblastGemm(context, transposeA: false, transposeB: true, m: g.og, n: g.cg, k: cols, alpha: 1,
                    a: wideDY, lda: cols, strideA: g.og * cols,
                    b: wideX, ldb: cols, strideB: g.cg * cols,
                    beta: 0, c: dw, ldc: g.cg, strideC: g.og * g.cg, batch: g.groups)
}

// MARK: depthwise and groupedDirect

/// Launch geometry shared by the direct kernels; the values are passed to
/// the programs as macros so host and kernels cannot disagree.
enum DirectConv {
    /// Output (or dx) tile of one work-group: `tile` × `tile` items.
    static let tile = 8
    /// Work-group size of the backward-weight reductions.
    static let reductionGroupSize = 64
    /// Each reduction item should sum at least this many positions before
    /// another work-group (split) is added...
    static let positionsPerItem = 8
    /// ...up to this many splits per weight row (the second pass adds them).
    static let maxSplits = 64
    /// Channels per work-item and per local-memory pass of grouped.cl.
    static let channelBlock = 4

    /// How many work-groups share the reduction over `positions` = N·OH·OW.
    static func splits(positions: Int) -> Int {
        let perGroup = reductionGroupSize * positionsPerItem
        return max(1, min(maxSplits, (positions + perGroup - 1) / perGroup))
    }

    /// The work-group (`TW` × `TH` items) and outputs per item along a row
    /// (`OPX`) of the depthwise forward and data-gradient kernels for planes
    /// of `width` × `height` outputs: 16 × 16 items with 2–4 outputs each on
    /// wide planes, fewer items where the plane is smaller than the tile.
    static func depthwiseTiling(width: Int, height: Int) -> (tw: Int, th: Int, opx: Int) {
        let opx = width >= 64 ? 4 : width >= 32 ? 2 : 1
        let tw = min(16, powerOfTwo(atLeast: (width + opx - 1) / opx))
        let th = min(256 / tw, powerOfTwo(atLeast: height))
        return (tw, th, opx)
    }

    /// A kernel of `Kernels/<family>.cl` (`depthwise` or `grouped`)
    /// specialised for the geometry's kernel size, stride and padding, and
    /// for depthwise the tiling of `tiling`'s plane (else the fixed tile).
    static func kernel(_ context: OpenCLContext, _ name: KernelName, _ g: Convolution2DGeometry,
                       tiling: (tw: Int, th: Int, opx: Int)? = nil) throws -> Kernel {
        let s = g.parameters
        let t = tiling ?? (tile, tile, 1)
        if name.family == "grouped" {
            // The grouped kernels take no OPX (their tile is the fixed one).
            return try context.kernel(name, GroupedDefines(
                kh: g.kh, kw: g.kw, sh: s.strideH, sw: s.strideW, ph: s.paddingH, pw: s.paddingW, th: t.th, tw: t.tw,
                ob: channelBlock, cb: channelBlock, ct: channelBlock, wg: reductionGroupSize))
        }
        return try context.kernel(name, DepthwiseDefines(
            kh: g.kh, kw: g.kw, sh: s.strideH, sw: s.strideW, ph: s.paddingH, pw: s.paddingW, th: t.th, tw: t.tw,
            opx: t.opx, wg: reductionGroupSize))
    }
}

/// Depthwise forward with the bias (if any) fused.
func depthwiseForward(_ context: OpenCLContext, _ g: Convolution2DGeometry, x: BufferView, w: BufferView,
                      bias: BufferView?, y: BufferView) throws {
    let t = DirectConv.depthwiseTiling(width: g.ow, height: g.oh)
    let kernel = try DirectConv.kernel(context, .depthwiseForward, g, tiling: t)
    // Without a bias the weight stands in as a never-read pointer (has_bias = 0).
    let b = bias ?? w
    // The (n, c) planes ride in dimension 0 beside the row tiles (see depthwise.cl).
    let rowTiles = (g.ow + t.tw * t.opx - 1) / (t.tw * t.opx)
    try context.launch(kernel, global: [rowTiles * t.tw * g.n * g.c, g.oh], local: [t.tw, t.th],
                       DepthwiseForwardArguments(C: Int32(g.c), H: Int32(g.h), W: Int32(g.w), OH: Int32(g.oh),
                                                 OW: Int32(g.ow), x: x, w: w, bias: b,
                                                 hasBias: Int32(bias == nil ? 0 : 1), y: y))
}

func depthwiseBackwardData(_ context: OpenCLContext, _ g: Convolution2DGeometry,
                           dy: BufferView, w: BufferView, dx: BufferView) throws {
    let t = DirectConv.depthwiseTiling(width: g.w, height: g.h)
    let kernel = try DirectConv.kernel(context, .depthwiseBackwardData, g, tiling: t)
    let rowTiles = (g.w + t.tw * t.opx - 1) / (t.tw * t.opx)
    try context.launch(kernel, global: [rowTiles * t.tw * g.n * g.c, g.h], local: [t.tw, t.th],
                       DepthwiseBackwardDataArguments(C: Int32(g.c), H: Int32(g.h), W: Int32(g.w), OH: Int32(g.oh),
                                                      OW: Int32(g.ow), dy: dy, w: w, dx: dx))
}

func depthwiseBackwardWeight(_ context: OpenCLContext, _ g: Convolution2DGeometry,
                             dy: BufferView, x: BufferView, dw: BufferView) throws {
    let taps = g.kh * g.kw
    let splits = DirectConv.splits(positions: g.n * g.p)
    // Every (channel, split) work-group writes its taps, so the scratch
    // buffer needs no clearing.
    let partial = try context.allocateView(count: g.c * splits * taps)
    let wg = DirectConv.reductionGroupSize
    let kernel = try DirectConv.kernel(context, .depthwiseBackwardWeight, g)
    try context.launch(kernel, global: [splits * wg, g.c], local: [wg, 1],
                       DepthwiseBackwardWeightArguments(N: Int32(g.n), C: Int32(g.c), H: Int32(g.h), W: Int32(g.w),
                                                        OH: Int32(g.oh), OW: Int32(g.ow), dy: dy, x: x,
                                                        partial: partial))
    let reduce = try DirectConv.kernel(context, .depthwiseBackwardWeightReduce, g)
    try context.launch(reduce, global: [dw.count], local: [pointwiseGroupSize],
                       DepthwiseBackwardWeightReduceArguments(total: Int32(dw.count), splits: Int32(splits),
                                                              partial: partial, dw: dw))
}

/// Grouped forward with the bias (if any) fused.
func groupedForward(_ context: OpenCLContext, _ g: Convolution2DGeometry, x: BufferView, w: BufferView,
                    bias: BufferView?, y: BufferView) throws {
    let blocks = (g.og + DirectConv.channelBlock - 1) / DirectConv.channelBlock
    let kernel = try DirectConv.kernel(context, .groupedForward, g)
    let b = bias ?? w
    // (n, group, block) rides in dimension 0 beside the row tiles (see grouped.cl).
    let t = DirectConv.tile
    try context.launch(kernel, global: [(g.ow + t - 1) / t * t * g.n * g.groups * blocks, g.oh],
                       local: [t, t],
                       GroupedForwardArguments(C: Int32(g.c), H: Int32(g.h), W: Int32(g.w), O: Int32(g.o),
                                               OH: Int32(g.oh), OW: Int32(g.ow), G: Int32(g.groups), CG: Int32(g.cg),
                                               OG: Int32(g.og), oblocks: Int32(blocks), x: x, w: w, bias: b,
                                               hasBias: Int32(bias == nil ? 0 : 1), y: y))
}

func groupedBackwardData(_ context: OpenCLContext, _ g: Convolution2DGeometry,
                         dy: BufferView, w: BufferView, dx: BufferView) throws {
    let blocks = (g.cg + DirectConv.channelBlock - 1) / DirectConv.channelBlock
    let kernel = try DirectConv.kernel(context, .groupedBackwardData, g)
    let t = DirectConv.tile
    try context.launch(kernel, global: [(g.w + t - 1) / t * t * g.n * g.groups * blocks, g.h],
                       local: [t, t],
                       GroupedBackwardDataArguments(C: Int32(g.c), H: Int32(g.h), W: Int32(g.w), O: Int32(g.o),
                                                    OH: Int32(g.oh), OW: Int32(g.ow), G: Int32(g.groups),
                                                    CG: Int32(g.cg), OG: Int32(g.og), cblocks: Int32(blocks),
                                                    dy: dy, w: w, dx: dx))
}

func groupedBackwardWeight(_ context: OpenCLContext, _ g: Convolution2DGeometry,
                           dy: BufferView, x: BufferView, dw: BufferView) throws {
    let taps = g.kh * g.kw
    let blocks = (g.cg + DirectConv.channelBlock - 1) / DirectConv.channelBlock
    let splits = DirectConv.splits(positions: g.n * g.p)
    // Every (output channel, input channel, split) row is written by its
    // work-group, so the scratch buffer needs no clearing.
    let partial = try context.allocateView(count: g.o * g.cg * splits * taps)
    let wg = DirectConv.reductionGroupSize
    let kernel = try DirectConv.kernel(context, .groupedBackwardWeight, g)
    try context.launch(kernel, global: [splits * wg, g.o * blocks], local: [wg, 1],
                       GroupedBackwardWeightArguments(N: Int32(g.n), C: Int32(g.c), H: Int32(g.h), W: Int32(g.w),
                                                      O: Int32(g.o), OH: Int32(g.oh), OW: Int32(g.ow), CG: Int32(g.cg),
                                                      OG: Int32(g.og), cblocks: Int32(blocks), dy: dy, x: x,
                                                      partial: partial))
    let reduce = try DirectConv.kernel(context, .groupedBackwardWeightReduce, g)
    try context.launch(reduce, global: [dw.count], local: [pointwiseGroupSize],
                       GroupedBackwardWeightReduceArguments(total: Int32(dw.count), splits: Int32(splits),
                                                            partial: partial, dw: dw))
}

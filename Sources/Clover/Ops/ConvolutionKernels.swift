import CloverRuntime

// The specialised OpenCL paths of the conv2d family (see Convolution.swift for the op, its shape
// rule, CPU reference and the general im2col path). `Conv2D`, `Conv2DBackwardData` and
// `Conv2DBackwardWeight` each pick a path with `Conv2DGeometry.algorithm`, so one shape always takes
// the same path forward and backward:
//
//   pointwiseGEMM  1x1 kernel, stride 1, padding 0 (any dilation, which a 1x1 kernel ignores),
//                  unless its groups are thin (below). The NCHW input of one sample already is the
//                  [C, H·W] column matrix, so every pass is CLBlast GEMM on the tensors themselves, no
//                  im2col / col2im copy: groups == 1 batches over the samples in one strided-batched
//                  call (the weight at stride 0); groups > 1 makes one call per sample,
//                  strided-batched over the groups.
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
// The direct kernels are compiled per (KH, KW, SH, SW, PH, PW) so their tap loops unroll.

/// Which OpenCL implementation runs a convolution; see
/// ``Conv2DParameters/algorithm(input:weight:)`` for the rules.
public enum ConvAlgorithm: String, Sendable, CaseIterable, CustomStringConvertible {
    /// 1x1, stride 1, padding 0: CLBlast GEMM straight on the NCHW tensors.
    case pointwiseGEMM
    /// One 3x3 or 5x5 filter per channel, stride 1 or 2, "same" padding: `Kernels/depthwise.cl`.
    case depthwise
    /// Grouped 3x3 (stride 1 or 2, padding 1) or 1x1 (stride 1, padding 0), at most 16 channels
    /// per group: `Kernels/grouped.cl`.
    case groupedDirect
    /// The general path: im2col (`Kernels/conv.cl`) and CLBlast GEMM.
    case im2colGEMM

    public var description: String { rawValue }
}

extension Conv2DParameters {
    /// The OpenCL implementation ``Conv2D`` and its gradients use for an
    /// input `[N, C, H, W]` and a weight `[O, C/groups, KH, KW]`:
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

extension Conv2DGeometry {
    /// The dispatch rule documented on ``Conv2DParameters/algorithm(input:weight:)``.
    var algorithm: ConvAlgorithm {
        let s = parameters
        let noDilation = s.dilationH == 1 && s.dilationW == 1
        let squareStride = s.strideH == s.strideW && (s.strideH == 1 || s.strideH == 2)
        let pointwise = kh == 1 && kw == 1 && s.strideH == 1 && s.strideW == 1 && s.paddingH == 0 && s.paddingW == 0
        let thinGroups = groups > 1 && cg <= groupedDirectMaxChannelsPerGroup && og <= groupedDirectMaxChannelsPerGroup
        if pointwise {
            // Thin groups (the RegNet cell's N groups of 2 channels) would be
            // one CLBlast call per sample of GEMMs a few rows deep.
            return thinGroups ? .groupedDirect : .pointwiseGEMM
        }
        if groups == c && groups == o && kh == kw && (kh == 3 || kh == 5) && squareStride && noDilation
            && s.paddingH == kh / 2 && s.paddingW == kw / 2 {
            return .depthwise
        }
        if thinGroups && kh == 3 && kw == 3 && squareStride && noDilation && s.paddingH == 1 && s.paddingW == 1 {
            return .groupedDirect
        }
        return .im2colGEMM
    }

    /// The direct kernels take N and O as `int` too (the im2col path never does).
    func checkDirectKernelLimits(op: String, shapes: [[Int]], on context: OpenCLContext) throws {
        try checkKernelLimits(op: op, shapes: shapes, on: context)
        guard n <= Int(Int32.max), o <= Int(Int32.max), o * cg * kh * kw <= Int(Int32.max) else {
            throw CloverError.unsupported(op: op, shapes: shapes, device: context.device.description,
                                          reason: "a size exceeds the kernels' 32-bit int parameters")
        }
    }
}

// MARK: pointwiseGEMM

/// `y = W · x` for a 1x1, stride-1, padding-0 convolution (bias not included).
func pointwiseForward(_ context: OpenCLContext, _ g: Conv2DGeometry,
                      x: BufferView, w: BufferView, y: BufferView) throws {
    if g.groups == 1 {
        // Y[n] (O × P) = W (O × C) · X[n] (C × P) for every sample in one call.
        try clblastGemm(context, transposeA: false, transposeB: false, m: g.o, n: g.p, k: g.c, alpha: 1,
                        a: w, lda: g.c, strideA: 0,
                        b: x, ldb: g.p, strideB: g.inputPerSample,
                        beta: 0, c: y, ldc: g.p, strideC: g.outputPerSample, batch: g.n)
        return
    }
    for n in 0..<g.n {
        // Y[n, g] (O/G × P) = W_g (O/G × C/G) · X[n, g] (C/G × P), batched over the groups.
        try clblastGemm(context, transposeA: false, transposeB: false, m: g.og, n: g.p, k: g.cg, alpha: 1,
                        a: w, lda: g.cg, strideA: g.og * g.cg,
                        b: x.slice(offset: n * g.inputPerSample, count: g.inputPerSample), ldb: g.p, strideB: g.cg * g.p,
                        beta: 0,
                        c: y.slice(offset: n * g.outputPerSample, count: g.outputPerSample), ldc: g.p,
                        strideC: g.og * g.p, batch: g.groups)
    }
}

/// `dx = Wᵀ · dy` for a 1x1, stride-1, padding-0 convolution. Every input
/// pixel is read by exactly one output pixel, so the GEMM writes all of dx.
func pointwiseBackwardData(_ context: OpenCLContext, _ g: Conv2DGeometry,
                           dy: BufferView, w: BufferView, dx: BufferView) throws {
    if g.groups == 1 {
        // dX[n] (C × P) = Wᵀ (C × O) · dY[n] (O × P) for every sample in one call.
        try clblastGemm(context, transposeA: true, transposeB: false, m: g.c, n: g.p, k: g.o, alpha: 1,
                        a: w, lda: g.c, strideA: 0,
                        b: dy, ldb: g.p, strideB: g.outputPerSample,
                        beta: 0, c: dx, ldc: g.p, strideC: g.inputPerSample, batch: g.n)
        return
    }
    for n in 0..<g.n {
        try clblastGemm(context, transposeA: true, transposeB: false, m: g.cg, n: g.p, k: g.og, alpha: 1,
                        a: w, lda: g.cg, strideA: g.og * g.cg,
                        b: dy.slice(offset: n * g.outputPerSample, count: g.outputPerSample), ldb: g.p,
                        strideB: g.og * g.p,
                        beta: 0,
                        c: dx.slice(offset: n * g.inputPerSample, count: g.inputPerSample), ldc: g.p,
                        strideC: g.cg * g.p, batch: g.groups)
    }
}

/// `dW = Σₙ dy[n] · x[n]ᵀ` for a 1x1, stride-1, padding-0 convolution.
func pointwiseBackwardWeight(_ context: OpenCLContext, _ g: Conv2DGeometry,
                             dy: BufferView, x: BufferView, dw: BufferView) throws {
    // The sum over samples is a sequence of calls accumulating into dW
    // (strided-batched GEMM cannot reduce over its batch); the first
    // overwrites (beta = 0, so a recycled buffer's garbage never leaks in).
    for n in 0..<g.n {
        try clblastGemm(context, transposeA: false, transposeB: true, m: g.og, n: g.cg, k: g.p, alpha: 1,
                        a: dy.slice(offset: n * g.outputPerSample, count: g.outputPerSample), lda: g.p,
                        strideA: g.og * g.p,
                        b: x.slice(offset: n * g.inputPerSample, count: g.inputPerSample), ldb: g.p,
                        strideB: g.cg * g.p,
                        beta: n == 0 ? 0 : 1,
                        c: dw, ldc: g.cg, strideC: g.og * g.cg, batch: g.groups)
    }
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

    /// A kernel of `Kernels/<family>.cl` (`depthwise` or `grouped`)
    /// specialised for the geometry's kernel size, stride and padding; all
    /// kernels of one family and geometry share one program.
    static func kernel(_ context: OpenCLContext, family: String, _ name: String, _ g: Conv2DGeometry) throws -> Kernel {
        let s = g.parameters
        var defines = ["KH": "\(g.kh)", "KW": "\(g.kw)", "SH": "\(s.strideH)", "SW": "\(s.strideW)",
                       "PH": "\(s.paddingH)", "PW": "\(s.paddingW)", "TH": "\(tile)", "TW": "\(tile)",
                       "WG": "\(reductionGroupSize)"]
        if family == "grouped" {
            for macro in ["OB", "CB", "CT"] { defines[macro] = "\(channelBlock)" }
        }
        return try context.kernel(family: family, name, defines: defines)
    }
}

/// Depthwise forward with the bias (if any) fused.
func depthwiseForward(_ context: OpenCLContext, _ g: Conv2DGeometry, x: BufferView, w: BufferView,
                      bias: BufferView?, y: BufferView) throws {
    let kernel = try DirectConv.kernel(context, family: "depthwise", "depthwise_forward", g)
    // Without a bias the weight stands in as a never-read pointer (has_bias = 0).
    let b = bias ?? w
    try context.launch(kernel, global: [g.ow, g.oh, g.n * g.c], local: [DirectConv.tile, DirectConv.tile, 1], arguments: [
        Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.oh), Int32(g.ow),
        x.buffer, x.kernelOffset, w.buffer, w.kernelOffset, b.buffer, b.kernelOffset, Int32(bias == nil ? 0 : 1),
        y.buffer, y.kernelOffset,
    ])
}

func depthwiseBackwardData(_ context: OpenCLContext, _ g: Conv2DGeometry,
                           dy: BufferView, w: BufferView, dx: BufferView) throws {
    let kernel = try DirectConv.kernel(context, family: "depthwise", "depthwise_backward_data", g)
    try context.launch(kernel, global: [g.w, g.h, g.n * g.c], local: [DirectConv.tile, DirectConv.tile, 1], arguments: [
        Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.oh), Int32(g.ow),
        dy.buffer, dy.kernelOffset, w.buffer, w.kernelOffset, dx.buffer, dx.kernelOffset,
    ])
}

func depthwiseBackwardWeight(_ context: OpenCLContext, _ g: Conv2DGeometry,
                             dy: BufferView, x: BufferView, dw: BufferView) throws {
    let taps = g.kh * g.kw
    let splits = DirectConv.splits(positions: g.n * g.p)
    // Every (channel, split) work-group writes its taps, so the scratch
    // buffer needs no clearing.
    let partial = try context.allocateView(count: g.c * splits * taps)
    let wg = DirectConv.reductionGroupSize
    let kernel = try DirectConv.kernel(context, family: "depthwise", "depthwise_backward_weight", g)
    try context.launch(kernel, global: [splits * wg, g.c], local: [wg, 1], arguments: [
        Int32(g.n), Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.oh), Int32(g.ow),
        dy.buffer, dy.kernelOffset, x.buffer, x.kernelOffset, partial.buffer, partial.kernelOffset,
    ])
    let reduce = try DirectConv.kernel(context, family: "depthwise", "depthwise_backward_weight_reduce", g)
    try context.launch(reduce, global: [dw.count], local: [pointwiseGroupSize], arguments: [
        Int32(dw.count), Int32(splits), partial.buffer, partial.kernelOffset, dw.buffer, dw.kernelOffset,
    ])
}

/// Grouped forward with the bias (if any) fused.
func groupedForward(_ context: OpenCLContext, _ g: Conv2DGeometry, x: BufferView, w: BufferView,
                    bias: BufferView?, y: BufferView) throws {
    let blocks = (g.og + DirectConv.channelBlock - 1) / DirectConv.channelBlock
    let kernel = try DirectConv.kernel(context, family: "grouped", "grouped_forward", g)
    let b = bias ?? w
    try context.launch(kernel, global: [g.ow, g.oh, g.n * g.groups * blocks],
                       local: [DirectConv.tile, DirectConv.tile, 1], arguments: [
        Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.oh), Int32(g.ow),
        Int32(g.groups), Int32(g.cg), Int32(g.og), Int32(blocks),
        x.buffer, x.kernelOffset, w.buffer, w.kernelOffset, b.buffer, b.kernelOffset, Int32(bias == nil ? 0 : 1),
        y.buffer, y.kernelOffset,
    ])
}

func groupedBackwardData(_ context: OpenCLContext, _ g: Conv2DGeometry,
                         dy: BufferView, w: BufferView, dx: BufferView) throws {
    let blocks = (g.cg + DirectConv.channelBlock - 1) / DirectConv.channelBlock
    let kernel = try DirectConv.kernel(context, family: "grouped", "grouped_backward_data", g)
    try context.launch(kernel, global: [g.w, g.h, g.n * g.groups * blocks],
                       local: [DirectConv.tile, DirectConv.tile, 1], arguments: [
        Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.oh), Int32(g.ow),
        Int32(g.groups), Int32(g.cg), Int32(g.og), Int32(blocks),
        dy.buffer, dy.kernelOffset, w.buffer, w.kernelOffset, dx.buffer, dx.kernelOffset,
    ])
}

func groupedBackwardWeight(_ context: OpenCLContext, _ g: Conv2DGeometry,
                           dy: BufferView, x: BufferView, dw: BufferView) throws {
    let taps = g.kh * g.kw
    let blocks = (g.cg + DirectConv.channelBlock - 1) / DirectConv.channelBlock
    let splits = DirectConv.splits(positions: g.n * g.p)
    // Every (output channel, input channel, split) row is written by its
    // work-group, so the scratch buffer needs no clearing.
    let partial = try context.allocateView(count: g.o * g.cg * splits * taps)
    let wg = DirectConv.reductionGroupSize
    let kernel = try DirectConv.kernel(context, family: "grouped", "grouped_backward_weight", g)
    try context.launch(kernel, global: [splits * wg, g.o * blocks], local: [wg, 1], arguments: [
        Int32(g.n), Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.o), Int32(g.oh), Int32(g.ow),
        Int32(g.cg), Int32(g.og), Int32(blocks),
        dy.buffer, dy.kernelOffset, x.buffer, x.kernelOffset, partial.buffer, partial.kernelOffset,
    ])
    let reduce = try DirectConv.kernel(context, family: "grouped", "grouped_backward_weight_reduce", g)
    try context.launch(reduce, global: [dw.count], local: [pointwiseGroupSize], arguments: [
        Int32(dw.count), Int32(splits), partial.buffer, partial.kernelOffset, dw.buffer, dw.kernelOffset,
    ])
}
